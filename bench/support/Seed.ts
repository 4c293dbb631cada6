/**
 * Seeds a product and its subscribers straight into the database with
 * multi-row INSERTs: 200,000 subscriptions in a few seconds, where one
 * `subscribe` call per user would take minutes and measure something else.
 */
import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

export interface SeedOptions {
  readonly productId: number
  readonly subscribers: number
  /** Users `firstUserId .. firstUserId + subscribers − 1`, subscribed in that order. Default 1. */
  readonly firstUserId?: number | undefined
  /** Stock large enough that the round never sells out. */
  readonly stock?: number | undefined
}

const rowsPerStatement = 5_000

/** Inserts the product (stock in `product.stock`; a Redis stock cache reloads its key from there) and its subscribers. */
export const seedProduct = (options: SeedOptions) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const stock = options.stock ?? 1_000_000_000
    yield* sql.unsafe(
      `INSERT INTO product (id, name, restock_round, stock, stock_status, created_at, updated_at)
       VALUES (${options.productId}, 'Bench product ${options.productId}', 0, ${stock}, 'IN_STOCK', UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))`
    )
    const first = options.firstUserId ?? 1
    for (let offset = 0; offset < options.subscribers; offset += rowsPerStatement) {
      const count = Math.min(rowsPerStatement, options.subscribers - offset)
      const values = Array.from(
        { length: count },
        (_, i) => `(${options.productId}, ${first + offset + i}, 1, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))`
      )
      yield* sql.unsafe(
        `INSERT INTO product_user_notification (product_id, user_id, is_active, created_at, updated_at) VALUES ${values.join(",")}`
      )
    }
  }).pipe(Effect.orDie)
