/**
 * A real database for a test suite, schema migrated, dropped afterwards.
 *
 * MySQL/MariaDB: `MYSQL_URL` when set, else the local default port when a
 * server answers there (root, no password), else a testcontainers MySQL 8.4.
 * When none is possible the suite fails saying what to start; it never passes
 * silently. Each layer creates its own `restock_test_<random>` database and
 * drops it when the layer is released.
 *
 * SQLite: a file in a fresh temporary directory (not `:memory:`, so that the
 * file, WAL mode and the busy timeout are what production runs), removed
 * afterwards.
 *
 * Both build with Effect's live clock: a suite that runs in `TestClock` must
 * not freeze the connection retries and timeouts of the set-up.
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import type { SqlClient } from "@effect/sql"
import { MysqlClient } from "@effect/sql-mysql2"
import { Clock, Context, Effect, Layer, Redacted, type Scope } from "effect"
import { randomBytes } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { DatabaseConfig } from "../../src/Config.js"
import * as Database from "../../src/Repo/Database.js"

/** The database a test layer made: its config, and its `DATABASE_URL` (to start the service on it). */
export class TestDatabase extends Context.Tag("test/Mysql/TestDatabase")<TestDatabase, {
  readonly config: DatabaseConfig
  readonly databaseUrl: string
}>() {}

// ---- finding a server

const localDefault = "mysql://root@127.0.0.1:3306/"

const portAnswers = (host: string, port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect({ host, port })
    const done = (answer: boolean) => {
      socket.destroy()
      resolve(answer)
    }
    socket.setTimeout(1_000, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
  })

const startContainer = async (): Promise<string> => {
  const { GenericContainer, Wait } = await import("testcontainers")
  const container = await new GenericContainer("mysql:8.4")
    .withEnvironment({ MYSQL_ALLOW_EMPTY_PASSWORD: "yes", MYSQL_ROOT_HOST: "%" })
    .withExposedPorts(3306)
    // The image starts a temporary server (port 0) to initialise, then the real one.
    .withWaitStrategy(Wait.forLogMessage(/ready for connections.*port: 3306/))
    .withStartupTimeout(180_000)
    .start()
  // Removed by the testcontainers reaper when the test process exits.
  return `mysql://root@${container.getHost()}:${container.getMappedPort(3306)}/`
}

const whatToStart = "start MySQL 8 or MariaDB 10.11 on 127.0.0.1:3306 (user root, no password), " +
  "set MYSQL_URL=mysql://user:password@host:port, or make Docker available for testcontainers"

const resolveServer = async (): Promise<string> => {
  const fromEnv = process.env.MYSQL_URL?.trim()
  if (fromEnv) {
    const url = new URL(fromEnv)
    if (await portAnswers(url.hostname, url.port === "" ? 3306 : Number(url.port))) {
      url.pathname = "/"
      return url.href
    }
    throw new Error(`MYSQL_URL=${fromEnv} does not answer: start that server or unset MYSQL_URL`)
  }
  if (await portAnswers("127.0.0.1", 3306)) return localDefault
  try {
    return await startContainer()
  } catch (cause) {
    throw new Error(`These tests need MySQL: ${whatToStart} (testcontainers: ${String(cause)})`)
  }
}

let resolved: Promise<string> | undefined

/** The server the tests use (a URL without a database), found once per test file. */
export const serverUrl: Effect.Effect<URL> = Effect.promise(() => (resolved ??= resolveServer())).pipe(
  Effect.map((raw) => new URL(raw))
)

/** Runs one statement on the server, outside any database. */
const onServer = (server: URL, statement: string) =>
  Effect.scoped(
    Effect.flatMap(MysqlClient.make({ url: Redacted.make(server.href), maxConnections: 1 }), (sql) => sql.unsafe(statement))
  ).pipe(
    Effect.provide(Reactivity.layer),
    Effect.mapError((error) => new Error(`MySQL at ${server.host}: ${String(error.cause ?? error.message)} — ${whatToStart}`)),
    Effect.orDie
  )

// ---- layers

const withLiveClock = <A, E, R>(layer: Layer.Layer<A, E, R>): Layer.Layer<A, E, R> =>
  Layer.scopedContext(
    Effect.scopeWith((scope) => Layer.buildWithScope(layer, scope)).pipe(Effect.withClock(Clock.make()))
  )

/** A fresh, empty MySQL/MariaDB database, dropped when the scope closes. */
export const freshMysqlDatabase: Effect.Effect<DatabaseConfig, never, Scope.Scope> = Effect.gen(function*() {
  const server = yield* serverUrl
  const name = `restock_test_${randomBytes(5).toString("hex")}`
  yield* Effect.acquireRelease(
    onServer(server, `CREATE DATABASE ${name} CHARACTER SET utf8mb4`),
    () => onServer(server, `DROP DATABASE IF EXISTS ${name}`)
  )
  const url = new URL(server)
  url.pathname = `/${name}`
  return { _tag: "Mysql", url: Redacted.make(url) }
})

/** A fresh MySQL/MariaDB database, migrated, as `SqlClient`; dropped when the layer is released. */
export const layerMysql: Layer.Layer<SqlClient.SqlClient | TestDatabase> = withLiveClock(Layer.unwrapScoped(
  Effect.map(freshMysqlDatabase, (config) =>
    // Released before the drop: the pool closes, then the database goes.
    Layer.merge(
      Database.layer(config).pipe(Layer.orDie),
      Layer.succeed(TestDatabase, { config, databaseUrl: config._tag === "Mysql" ? Redacted.value(config.url).href : "" })
    ))
))

/** A fresh SQLite file, migrated, as `SqlClient`; deleted when the layer is released. */
export const layerSqlite: Layer.Layer<SqlClient.SqlClient | TestDatabase> = withLiveClock(Layer.unwrapScoped(
  Effect.gen(function*() {
    const directory = yield* Effect.acquireRelease(
      Effect.promise(() => mkdtemp(join(tmpdir(), "restock-test-"))),
      (directory) => Effect.promise(() => rm(directory, { recursive: true, force: true }))
    )
    const filename = join(directory, "restock.sqlite")
    const config: DatabaseConfig = { _tag: "Sqlite", filename }
    return Layer.merge(
      Database.layer(config).pipe(Layer.orDie),
      Layer.succeed(TestDatabase, { config, databaseUrl: `sqlite:${filename}` })
    )
  })
))
