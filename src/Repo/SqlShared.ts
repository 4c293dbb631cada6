/**
 * What every part of the SQL `Repo` adapter shares: the context a part is
 * made from (the client, the dialect, the transaction), the mapping of
 * database failures to `StorageUnavailable`, the column lists and decoders
 * of products and rounds, and the reads several aggregates make.
 *
 * The adapter is split by aggregate (`SqlProducts.ts`, `SqlSubscriptions.ts`,
 * `SqlRounds.ts`, `SqlDeliveries.ts`, `SqlRetention.ts`); `Sql.ts` puts the
 * parts together into one `Repo`.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import * as SqlError from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { LeaseLost, ProductNotFound, StorageUnavailable } from "../Domain/Errors.js"
import type { ProductId, RestockRound } from "../Domain/Ids.js"
import { Product } from "../Domain/Product.js"
import { Round } from "../Domain/Round.js"
import { type ConnectionPool, driverPoolOf } from "./CallbackTransaction.js"
import type { Dialect } from "./Dialect.js"
import { decodeAll, decodeFirst, LeaseRow, RoundRow } from "./Rows.js"
import { hotPathQueries } from "./SqlQueries.js"

/** Maps database failures to `StorageUnavailable`, naming the operation; other errors pass. */
export const orUnavailable = (operation: string) =>
<A, E, R>(
  self: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, SqlError.SqlError> | StorageUnavailable, R> =>
  Effect.mapError(self, (error) =>
    error instanceof SqlError.SqlError
      ? StorageUnavailable.fromCause(`database error in ${operation}`, error.cause ?? error)
      : error as Exclude<E, SqlError.SqlError>)

/** The adapter's transaction: see `makeTransaction`. */
export type Transaction = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError.SqlError, R>

/**
 * Runs `self` in a transaction, again (a few times) when the server chose
 * it as a deadlock victim: every transaction here can simply be rerun.
 *
 * `withTransaction` turns a failed COMMIT or ROLLBACK into a defect. When
 * the connection dropped mid-transaction that is an outage like any other:
 * it goes back to the error channel, so callers see `StorageUnavailable`
 * and can retry (every transaction here is safe to rerun after a commit
 * whose answer was lost: inserts skip recorded users, updates are fenced).
 */
export const makeTransaction = (sql: SqlClient.SqlClient, dialect: Dialect): Transaction => (self) =>
  sql.withTransaction(self).pipe(
    Effect.catchSomeDefect((defect) =>
      defect instanceof SqlError.SqlError ? Option.some(Effect.fail(defect)) : Option.none()
    ),
    Effect.retry({
      times: 3,
      while: (error) => error instanceof SqlError.SqlError && dialect.isDeadlock(error)
    })
  )

/** The time now, from Effect's `Clock`: tests in virtual time see the times they set, never the database's. */
export const currentTime = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis))

/** The most rows one statement inserts or names in an `IN` list. */
export const maxRowsPerStatement = 1_000

export { limitOf } from "./SqlQueries.js"

export const productColumns = "p.id, p.name, p.restock_round AS restockRound, p.stock, p.stock_status AS stockStatus, " +
  "p.minimum_stock AS minimumStock, p.notify_per_unit AS notifyPerUnit"

export const roundColumns = [
  "h.product_id AS productId",
  "h.restock_round AS restockRound",
  "h.status",
  "h.last_sent_user_id AS lastSentUserId",
  "h.sent_count AS sentCount",
  "h.started_at AS startedAt",
  "h.updated_at AS updatedAt",
  "h.finished_at AS finishedAt",
  "h.error",
  "h.waiting_until AS waitingUntil"
].join(", ")

// Each decoder is made once, at import: made per query, `decodeAll`'s `Schema.Array` was
// built on every call (~3 % of a `GET /products/{id}`'s CPU in the profile).
export const decodeProduct = decodeFirst(Product)
export const decodeProducts = decodeAll(Product)
const decodeLease = decodeFirst(LeaseRow)
const decodeRoundRows = decodeAll(RoundRow)
export const decodeRounds = Effect.fnUntraced(function*(rows: ReadonlyArray<unknown>) {
  const decoded = yield* decodeRoundRows(rows)
  return decoded.map((row) => new Round(row, { disableValidation: true }))
})

export const leaseLost = (productId: ProductId, restockRound: RestockRound, owner: string) =>
  new LeaseLost({
    productId,
    restockRound,
    message: `round ${restockRound} of product ${productId} is no longer in progress under ${owner}`
  })

/** What each part of the adapter is made from. */
export interface SqlContext {
  readonly sql: SqlClient.SqlClient
  readonly dialect: Dialect
  readonly transaction: Transaction
  readonly queries: ReturnType<typeof hotPathQueries>
  readonly reads: ReturnType<typeof makeSharedReads>
  /** The driver's pool, for the record batch's callback chain; `undefined`: the batch takes the general path. */
  readonly callbackPool: Effect.Effect<ConnectionPool | undefined, SqlError.SqlError>
}

/** The reads that several aggregates make. */
const makeSharedReads = (sql: SqlClient.SqlClient) => {
  const findProduct = (id: ProductId) =>
    sql`SELECT ${sql.literal(productColumns)} FROM product p WHERE p.id = ${id}`.pipe(
      Effect.flatMap(decodeProduct)
    )

  const requireProduct = (id: ProductId) =>
    sql`SELECT id FROM product WHERE id = ${id}`.pipe(
      Effect.flatMap((rows) => (rows.length > 0 ? Effect.void : Effect.fail(ProductNotFound.of(id))))
    )

  const findRound = (productId: ProductId, restockRound: RestockRound) =>
    sql`SELECT ${sql.literal(roundColumns)} FROM product_notification_history h
      WHERE h.product_id = ${productId} AND h.restock_round = ${restockRound}`.pipe(
      Effect.flatMap(decodeRounds),
      Effect.map((rounds) => Option.fromNullable(rounds[0]))
    )

  /** A round the current transaction has just written, so it exists. */
  const roundJustWritten = (productId: ProductId, restockRound: RestockRound) =>
    Effect.flatMap(
      findRound(productId, restockRound),
      Option.match({
        onNone: () => Effect.dieMessage(`round ${restockRound} of product ${productId} vanished while being written`),
        onSome: Effect.succeed
      })
    )

  const findLease = (productId: ProductId, restockRound: RestockRound) =>
    sql`SELECT lease_owner AS owner, lease_expires_at AS expiresAt FROM product_notification_history
      WHERE product_id = ${productId} AND restock_round = ${restockRound}
        AND status = 'IN_PROGRESS' AND lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL`.pipe(
      Effect.flatMap(decodeLease)
    )

  return { findProduct, requireProduct, findRound, roundJustWritten, findLease }
}

export const makeSqlContext = (
  sql: SqlClient.SqlClient,
  dialect: Dialect,
  callbackPool: Effect.Effect<ConnectionPool | undefined, SqlError.SqlError> = dialect.name === "mysql"
    ? driverPoolOf(sql)
    : Effect.succeed(undefined)
): SqlContext => ({
  sql,
  dialect,
  transaction: makeTransaction(sql, dialect),
  queries: hotPathQueries(sql),
  reads: makeSharedReads(sql),
  callbackPool
})
