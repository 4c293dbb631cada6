/**
 * Running the schema migrations (the numbered files of `migrations/`) on the
 * `SqlClient` in context: at start-up (`Database.layer`) and by
 * `npm run migrate`.
 *
 * A failure is one `StorageUnavailable` naming the migration and the
 * driver's error beneath it: the migrator dies on a failed migration, and its
 * own message does not say why.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as SqlError from "@effect/sql/SqlError"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { StorageUnavailable } from "../Domain/Errors.js"
import { dialectOf } from "./Dialect.js"
import { loader } from "./migrations/index.js"
import { sqlCauseMessage } from "./SqlCause.js"

const migrationsTable = "effect_sql_migrations"

const runMigrator = Migrator.make({})({ loader, table: migrationsTable })

/**
 * Applies the migrations not yet applied; answers the ones it applied.
 *
 * On MySQL, two extra cares. Instances starting together take turns through
 * a named lock (the migrator's own guard lets the second go on before the
 * first has finished). And DDL commits implicitly, so a migration that fails
 * half-way has already been recorded as applied: its record is removed, for
 * the next run to try again.
 */
export const migrate: Effect.Effect<
  ReadonlyArray<readonly [id: number, name: string]>,
  StorageUnavailable,
  SqlClient.SqlClient
> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const dialect = dialectOf(sql)
  const run = runMigrator.pipe(
    // The migrator dies when a migration fails; that is an error to report, not a bug.
    Effect.catchAllDefect((defect) =>
      defect instanceof Migrator.MigrationError ? Effect.fail(defect) : Effect.die(defect)
    ),
    Effect.mapError((error) =>
      error._tag === "MigrationError"
        ? new MigrationFailed({
          message: error.cause === undefined ? error.message : `${error.message}: ${sqlCauseMessage(error.cause)}`,
          failedId: Option.fromNullable(/Migration "(\d+)_/.exec(error.message)?.[1]).pipe(Option.map(Number))
        })
        : new MigrationFailed({ message: `migrating the schema failed: ${sqlCauseMessage(error)}`, failedId: Option.none() })
    )
  )
  if (dialect.name !== "mysql") return yield* run.pipe(Effect.mapError(toStorageUnavailable))

  return yield* run.pipe(
    Effect.tapError((failure) =>
      Option.match(failure.failedId, {
        onNone: () => Effect.void,
        onSome: (id) => sql`DELETE FROM ${sql(migrationsTable)} WHERE migration_id >= ${id}`.pipe(Effect.ignore)
      })
    ),
    Effect.mapError(toStorageUnavailable),
    withMysqlMigrationLock(sql)
  )
})

class MigrationFailed extends Data.TaggedError("MigrationFailed")<{
  readonly message: string
  /** The migration that failed, when one did (rather than the migrator around it). */
  readonly failedId: Option.Option<number>
}> {}

const toStorageUnavailable = (failure: { readonly message: string }) => new StorageUnavailable({ message: failure.message })

const withMysqlMigrationLock = (sql: SqlClient.SqlClient) =>
<A, R>(
  self: Effect.Effect<A, StorageUnavailable, R>
): Effect.Effect<A, StorageUnavailable, R> =>
  Effect.scoped(
    Effect.gen(function*() {
      // A named lock belongs to a connection: hold one aside for the duration.
      const connection = yield* sql.reserve
      // Lock names are server-wide and at most 64 characters.
      const lockName = "CONCAT('restock.migrations.', LEFT(DATABASE(), 44))"
      yield* Effect.acquireRelease(
        connection.executeRaw(`SELECT GET_LOCK(${lockName}, 120) AS locked`, []).pipe(
          Effect.flatMap((rows) =>
            Array.isArray(rows) && rows[0]?.locked === 1
              ? Effect.void
              : Effect.fail(new StorageUnavailable({ message: "another instance has been migrating the schema for 2 minutes" }))
          )
        ),
        () => connection.executeRaw(`SELECT RELEASE_LOCK(${lockName})`, []).pipe(Effect.ignore)
      )
      return yield* self
    })
  ).pipe(
    Effect.catchTag("SqlError", (error: SqlError.SqlError) =>
      Effect.fail(new StorageUnavailable({ message: `migration lock: ${sqlCauseMessage(error)}` })))
  )
