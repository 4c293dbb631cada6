/**
 * The database restock runs on, from `DATABASE_URL`: a MySQL/MariaDB pool or
 * the embedded SQLite file, as an `SqlClient` with the schema migrated (the
 * migrations run in `Migrate.ts`).
 *
 * Start-up is where a missing database shows, so it fails with one
 * `StorageUnavailable` naming `DATABASE_URL` and saying why, after a bounded
 * retry for the errors that time can fix (a server still starting).
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as MysqlClient from "@effect/sql-mysql2/MysqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import { mkdir } from "node:fs/promises"
import { dirname, resolve } from "node:path"
import type { DatabaseConfig } from "../Config.js"
import { describeCause, StorageUnavailable } from "../Domain/Errors.js"
import { migrate } from "./Migrate.js"
import { sqlCauseMessage } from "./SqlCause.js"

// Part of the library's surface as `Database.migrate` (index.ts): kept here too.
export { migrate } from "./Migrate.js"

/** A `SqlClient` for `config` with every migration applied. */
export const layer = (config: DatabaseConfig): Layer.Layer<SqlClient.SqlClient, StorageUnavailable> =>
  Layer.effectDiscard(
    migrate.pipe(Effect.mapError((error) => new StorageUnavailable({ message: `DATABASE_URL (${describe(config)}): ${error.message}` })))
  ).pipe(Layer.provideMerge(clientLayer(config)))

/** A `SqlClient` for `config`, schema untouched. */
export const clientLayer = (config: DatabaseConfig): Layer.Layer<SqlClient.SqlClient, StorageUnavailable> =>
  config._tag === "Mysql" ? mysqlLayer(Redacted.value(config.url)) : sqliteLayer(config.filename)

/** Where the data lives, for logs: the URL without its password. */
export const describe = (config: DatabaseConfig): string => {
  if (config._tag === "Sqlite") return `sqlite:${config.filename}`
  const url = new URL(Redacted.value(config.url).href)
  url.password = ""
  url.search = ""
  return url.href
}

// ---- MySQL / MariaDB

/** Connection attempts at start-up: backing off from 250 ms to 2 s, about 15 s in all. */
const connectRetry = Schedule.exponential("250 millis").pipe(
  Schedule.union(Schedule.spaced("2 seconds")),
  Schedule.intersect(Schedule.recurs(9))
)

/** Errors that waiting does not fix. */
const permanentMysqlCodes = new Set(["ER_ACCESS_DENIED_ERROR", "ER_DBACCESS_DENIED_ERROR", "ER_BAD_DB_ERROR", "ER_NOT_SUPPORTED_AUTH_MODE"])

const isTransient = (error: SqlError.SqlError): boolean => !permanentMysqlCodes.has(mysqlCode(error) ?? "")

const mysqlCode = (error: SqlError.SqlError): string | undefined => {
  const cause = error.cause as { code?: unknown } | undefined
  return typeof cause?.code === "string" ? cause.code : undefined
}

const mysqlLayer = (url: URL): Layer.Layer<SqlClient.SqlClient, StorageUnavailable> => {
  const where = describe({ _tag: "Mysql", url: Redacted.make(url) })
  const options = mysqlOptions(url)
  return Layer.scopedContext(
    MysqlClient.make(options).pipe(
      Effect.tapError((error) =>
        isTransient(error)
          ? Effect.logWarning(`database not reachable yet: ${sqlCauseMessage(error)}`).pipe(Effect.annotateLogs("database", where))
          : Effect.void
      ),
      Effect.retry({ while: isTransient, schedule: connectRetry }),
      Effect.mapError((error) =>
        new StorageUnavailable({
          message: mysqlCode(error) === "ER_BAD_DB_ERROR"
            ? `DATABASE_URL (${where}): database "${options.database}" does not exist; create it first`
            : `DATABASE_URL (${where}): cannot connect: ${sqlCauseMessage(error)}`
        })
      ),
      Effect.map((client) => Context.make(SqlClient.SqlClient, client))
    )
  ).pipe(Layer.provide(Reactivity.layer))
}

const defaultPoolSize = 10

/**
 * The pool options restock relies on. Built from the URL's parts rather than
 * passed as `url`, because the client ignores `poolConfig` when given a URL:
 *  - `timezone: "Z"`: DATETIME values are written and read as UTC;
 *  - `supportBigNumbers` (set by the client) without `bigNumberStrings`: a
 *    BIGINT comes back as a number when it is a safe integer (every id is);
 *  - a bounded prepared-statement cache: batch inserts prepare one statement
 *    per batch size, and the server caps statements across connections;
 *  - idle connections kept (the client's default closes them every second).
 * Other URL parameters (`?ssl=...`, `?connectionLimit=...`) pass through as
 * mysql2 options, values parsed as JSON where they parse.
 */
const mysqlOptions = (url: URL): MysqlClient.MysqlClientConfig => {
  const extra: Record<string, unknown> = {}
  for (const [key, value] of url.searchParams) {
    try {
      extra[key] = JSON.parse(value)
    } catch {
      extra[key] = value
    }
  }
  // At least two: migrating holds one connection for its lock while the migrator uses another.
  const poolSize = typeof extra.connectionLimit === "number" ? Math.max(2, extra.connectionLimit) : defaultPoolSize
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port === "" ? 3306 : Number(url.port),
    database: decodeURIComponent(url.pathname.replace(/^\//, "")) || undefined,
    username: url.username === "" ? undefined : decodeURIComponent(url.username),
    password: url.password === "" ? undefined : Redacted.make(decodeURIComponent(url.password)),
    maxConnections: poolSize,
    connectionTTL: Duration.minutes(5),
    poolConfig: {
      charset: "utf8mb4",
      connectTimeout: 5_000,
      maxPreparedStatements: 128,
      ...extra,
      connectionLimit: poolSize,
      timezone: "Z",
      dateStrings: false,
      bigNumberStrings: false,
      maxIdle: poolSize
    }
  }
}

// ---- SQLite

const sqliteLayer = (filename: string): Layer.Layer<SqlClient.SqlClient, StorageUnavailable> => {
  const where = `sqlite:${filename}`
  const unavailable = (cause: unknown) =>
    new StorageUnavailable({ message: `DATABASE_URL (${where}): cannot open the database: ${describeCause(cause)}` })
  return Layer.scopedContext(
    Effect.gen(function*() {
      if (filename !== ":memory:" && filename !== "") {
        yield* Effect.tryPromise({
          try: () => mkdir(dirname(resolve(filename)), { recursive: true }),
          catch: unavailable
        })
      }
      // Opening a file that cannot be created throws inside the client: a defect to report, not to crash on.
      const client = yield* SqliteClient.make({ filename }).pipe(Effect.catchAllDefect((defect) => Effect.fail(unavailable(defect))))
      // The client turns on WAL (readers never block the writer). A second process on the
      // same file (`npm run migrate` while the service runs) waits for the lock instead of
      // failing at once; with WAL, NORMAL sync is durable across crashes of the process.
      yield* client`PRAGMA busy_timeout = 5000`.pipe(
        Effect.zipRight(client`PRAGMA synchronous = NORMAL`),
        Effect.mapError((error) => unavailable(error.cause ?? error))
      )
      return Context.make(SqlClient.SqlClient, client)
    })
  ).pipe(Layer.provide(Reactivity.layer))
}
