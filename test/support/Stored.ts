/**
 * What tests read straight from the database to check what the service
 * stored, beside the `Repo` port rather than in it: no part of the service
 * needs a round's lease or a count of a product's subscribers.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { ProductId, RestockRound } from "../../src/Domain/Ids.js"
import type { Lease } from "../../src/Repo/Repo.js"
import { decodeFirst, LeaseRow } from "../../src/Repo/Rows.js"

const decodeLease = decodeFirst(LeaseRow)
const decodeCount = decodeFirst(Schema.Struct({ count: Schema.NonNegativeInt }))

/** The lease of a round in progress, if it has one. */
export const leaseOf = (productId: ProductId, restockRound: RestockRound): Effect.Effect<Option.Option<Lease>, never, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`SELECT lease_owner AS owner, lease_expires_at AS expiresAt FROM product_notification_history
      WHERE product_id = ${productId} AND restock_round = ${restockRound}
        AND status = 'IN_PROGRESS' AND lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL`).pipe(
    Effect.flatMap(decodeLease),
    Effect.map(Option.map((row): Lease => ({ owner: row.owner, expiresAt: row.expiresAt }))),
    Effect.orDie
  )

/** How many users are subscribed to the product: the most a round would notify. */
export const countActiveSubscribers = (productId: ProductId): Effect.Effect<number, never, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`SELECT COUNT(*) AS count FROM product_user_notification
      WHERE product_id = ${productId} AND is_active = 1`).pipe(
    Effect.flatMap(decodeCount),
    Effect.map(Option.match({ onNone: () => 0, onSome: (row) => row.count })),
    Effect.orDie
  )
