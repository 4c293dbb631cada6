/**
 * The `Repo` adapter for MySQL/MariaDB and SQLite: one set of queries, the
 * differences asked of `Dialect.ts`, in a part per aggregate — products,
 * subscriptions, rounds, deliveries, retention — over what `SqlShared.ts`
 * gives them all (the transaction, the error mapping, the shared reads).
 *
 * Every time written comes from the caller or Effect's `Clock`, never from
 * the database's clock, so that tests in virtual time see the times they set.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { detect, type Dialect } from "./Dialect.js"
import { Repo, type RepoShape } from "./Repo.js"
import { makeDeliveries } from "./SqlDeliveries.js"
import { makeProducts } from "./SqlProducts.js"
import { makeRetention } from "./SqlRetention.js"
import { makeRounds } from "./SqlRounds.js"
import { makeSqlContext, orUnavailable, type SqlContext } from "./SqlShared.js"
import { makeSubscriptions } from "./SqlSubscriptions.js"

export { hotPathQueries } from "./SqlQueries.js"

/**
 * The adapter over the `SqlClient` in context, speaking `dialect`.
 * `callbackPool`: the driver pool record batches use (tests give one that
 * fails); by default, on MySQL/MariaDB, the client's own.
 */
export const makeWithDialect = (
  dialect: Dialect,
  options: { readonly callbackPool?: SqlContext["callbackPool"] } = {}
): Effect.Effect<RepoShape, never, SqlClient.SqlClient> =>
  Effect.map(SqlClient.SqlClient, (sql) => {
    const context = makeSqlContext(sql, dialect, options.callbackPool)
    return Repo.of({
      ...makeProducts(context),
      ...makeSubscriptions(context),
      ...makeRounds(context),
      ...makeDeliveries(context),
      ...makeRetention(context),
      ping: sql`SELECT 1 AS ok`.pipe(Effect.asVoid, orUnavailable("ping"))
    })
  })

/** The adapter over the `SqlClient` in context. */
export const make: Effect.Effect<RepoShape, never, SqlClient.SqlClient> = Effect.flatMap(detect, makeWithDialect)

/** `Repo` over the `SqlClient` in context (build that with `Database.layer`). */
export const layer: Layer.Layer<Repo, never, SqlClient.SqlClient> = Layer.effect(Repo, make)
