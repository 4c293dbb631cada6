/**
 * A migration written once per dialect restock supports: MySQL/MariaDB and
 * the embedded SQLite.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

export const perDialect = <E, R>(steps: {
  readonly mysql: Effect.Effect<void, E, R>
  readonly sqlite: Effect.Effect<void, E, R>
}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.onDialectOrElse({
      mysql: () => steps.mysql,
      sqlite: () => steps.sqlite,
      orElse: () => Effect.dieMessage("restock's schema exists for MySQL/MariaDB and SQLite only")
    })
  })
