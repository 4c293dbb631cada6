/**
 * Where MySQL/MariaDB and SQLite differ at run time. The Repo adapter writes
 * its queries once and asks this module for the few pieces that differ: how a
 * time is bound, how "insert unless it exists" and "insert or update" are
 * spelled, how many rows a write touched, and what a unique-key violation
 * looks like. (The table definitions differ too; they live in the migrations,
 * which are history and must not change when this module does.)
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlConnection from "@effect/sql/SqlConnection"
import type * as SqlError from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"

export interface Dialect {
  readonly name: "mysql" | "sqlite"
  /**
   * A time as a query parameter. mysql2 formats a `Date` itself (in UTC: the
   * pool runs with `timezone: "Z"`, see `Database.ts`); better-sqlite3 binds no
   * `Date`, so SQLite keeps ISO-8601 UTC text, which sorts like the time it
   * names, so `<` and `ORDER BY` work on it.
   */
  readonly timestamp: (date: Date) => Date | string
  /**
   * Whether an `INSERT` can answer the rows it inserted (`RETURNING`):
   * SQLite ≥ 3.35 and MariaDB ≥ 10.5 can, MySQL 8 cannot.
   */
  readonly insertReturning: boolean
  /**
   * `INSERT INTO <table> <rows>` that skips rows whose unique key already
   * exists, answering `returning` of the rows it inserted when given (only
   * where `insertReturning`).
   */
  readonly insertSkippingDuplicates: (
    table: string,
    rows: Statement.RecordInsertHelper,
    returning?: string
  ) => Statement.Statement<SqlConnection.Row>
  /**
   * `INSERT INTO <table> <row>` that, when a row with the same `conflictKey`
   * exists, applies `assignments` to it instead (or leaves it as it is when
   * there are none).
   */
  readonly insertOrUpdate: (
    table: string,
    row: Statement.RecordInsertHelper,
    conflictKey: ReadonlyArray<string>,
    assignments: ReadonlyArray<Statement.Fragment>
  ) => Statement.Statement<SqlConnection.Row>
  /** Locks the rows a `SELECT` reads until the transaction ends (SQLite: its writer lock already does). */
  readonly forUpdate: Statement.Fragment
  /**
   * The rows the connection's last statement changed, as an SQL expression:
   * what an insert run unprepared (whose result says nothing) inserted.
   */
  readonly changesOfLastStatement: Statement.Fragment
  /** Rows matched by an `UPDATE`, or inserted by an `INSERT`, from a statement's `.raw` result. */
  readonly affectedRows: (result: unknown) => number
  /** A unique index refused a row. */
  readonly isDuplicateKey: (error: SqlError.SqlError) => boolean
  /** The server rolled the transaction back to break a deadlock: running it again is the cure. */
  readonly isDeadlock: (error: SqlError.SqlError) => boolean
}

/** The unique column that allows one `IN_PROGRESS` round per product. */
export const oneRoundInProgressColumn = "in_progress_product_id"

const causeOf = (error: SqlError.SqlError): { readonly code?: unknown; readonly errno?: unknown; readonly message?: unknown } =>
  typeof error.cause === "object" && error.cause !== null ? error.cause : {}

const returningClause = (sql: SqlClient.SqlClient, returning: string | undefined) =>
  returning === undefined ? sql.literal("") : sql.literal(`RETURNING ${returning}`)

const mysql = (sql: SqlClient.SqlClient, options: { readonly insertReturning: boolean }): Dialect => ({
  name: "mysql",
  timestamp: (date) => date,
  insertReturning: options.insertReturning,
  insertSkippingDuplicates: (table, rows, returning) =>
    sql`INSERT IGNORE INTO ${sql(table)} ${rows} ${returningClause(sql, returning)}`,
  insertOrUpdate: (table, row, conflictKey, assignments) =>
    // MySQL finds the conflicting row by any unique key; `conflictKey` names the one we expect.
    sql`INSERT INTO ${sql(table)} ${row} ON DUPLICATE KEY UPDATE ${
      assignments.length > 0 ? sql.csv(assignments) : sql`${sql(conflictKey[0]!)} = ${sql(conflictKey[0]!)}`
    }`,
  forUpdate: sql.literal("FOR UPDATE"),
  changesOfLastStatement: sql.literal("ROW_COUNT()"),
  affectedRows: (result) => Number((result as { affectedRows?: number }).affectedRows ?? 0),
  isDuplicateKey: (error) => {
    const cause = causeOf(error)
    return cause.code === "ER_DUP_ENTRY" || cause.errno === 1062
  },
  isDeadlock: (error) => {
    const cause = causeOf(error)
    return cause.code === "ER_LOCK_DEADLOCK" || cause.errno === 1213
  }
})

const sqlite = (sql: SqlClient.SqlClient, options: { readonly insertReturning: boolean }): Dialect => ({
  name: "sqlite",
  timestamp: (date) => date.toISOString(),
  insertReturning: options.insertReturning,
  // `ON CONFLICT DO NOTHING` rather than `INSERT OR IGNORE`: only a unique-key
  // conflict is skipped; a NOT NULL or CHECK violation still fails.
  insertSkippingDuplicates: (table, rows, returning) =>
    sql`INSERT INTO ${sql(table)} ${rows} ON CONFLICT DO NOTHING ${returningClause(sql, returning)}`,
  insertOrUpdate: (table, row, conflictKey, assignments) =>
    assignments.length > 0
      ? sql`INSERT INTO ${sql(table)} ${row} ON CONFLICT (${sql.csv(conflictKey.map((column) => sql`${sql(column)}`))}) DO UPDATE SET ${
        sql.csv(assignments)
      }`
      : sql`INSERT INTO ${sql(table)} ${row} ON CONFLICT DO NOTHING`,
  forUpdate: sql.literal(""),
  changesOfLastStatement: sql.literal("changes()"),
  affectedRows: (result) => Number((result as { changes?: number }).changes ?? 0),
  isDuplicateKey: (error) => {
    const code = causeOf(error).code
    return code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY"
  },
  // One writer at a time: SQLite waits for the lock (busy timeout) rather than deadlocking.
  isDeadlock: () => false
})

/**
 * The dialect of a client; restock runs on MySQL/MariaDB and SQLite only.
 * Without `insertReturning`, assumes what every supported version can do:
 * `RETURNING` on SQLite, none on MySQL (see `detect` for MariaDB's).
 */
export const dialectOf = (
  sql: SqlClient.SqlClient,
  options?: { readonly insertReturning?: boolean | undefined }
): Dialect =>
  sql.onDialectOrElse({
    mysql: () => mysql(sql, { insertReturning: options?.insertReturning ?? false }),
    sqlite: () => sqlite(sql, { insertReturning: options?.insertReturning ?? true }),
    orElse: () => {
      throw new Error(`restock runs on MySQL/MariaDB or SQLite, not ${sql.onDialect({
        mysql: () => "mysql",
        sqlite: () => "sqlite",
        pg: () => "PostgreSQL",
        mssql: () => "SQL Server",
        clickhouse: () => "ClickHouse"
      })}`)
    }
  })

/** MariaDB answers `INSERT ... RETURNING` from 10.5 on; MySQL (8.4 included) never. */
export const mariaDbReturns = (version: string): boolean => {
  const match = /^(\d+)\.(\d+)\..*mariadb/i.exec(version)
  return match !== null && (Number(match[1]) > 10 || (Number(match[1]) === 10 && Number(match[2]) >= 5))
}

/** The dialect of the client in context, asking a MySQL-protocol server whether it is a MariaDB that returns. */
export const detect: Effect.Effect<Dialect, never, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  if (dialectOf(sql).name !== "mysql") return dialectOf(sql)
  const insertReturning = yield* sql<{ version: string }>`SELECT VERSION() AS version`.pipe(
    Effect.map((rows) => mariaDbReturns(String(rows[0]?.version ?? ""))),
    // Unknown: fall back to what every server can do.
    Effect.orElseSucceed(() => false)
  )
  return dialectOf(sql, { insertReturning })
})

/** Whether a unique-key violation is the one-`IN_PROGRESS`-round-per-product guard's. */
export const violatesOneRoundInProgress = (dialect: Dialect, error: SqlError.SqlError): boolean =>
  dialect.isDuplicateKey(error) && String(causeOf(error).message ?? "").includes(oneRoundInProgressColumn)
