/**
 * The `Repo` adapter for MySQL/MariaDB and SQLite: one set of queries, the
 * differences asked of `Dialect.ts`.
 *
 * Round writes are fenced: each one names the round, `status = 'IN_PROGRESS'`
 * and the lease owner in its `WHERE`, so a dispatcher whose round was taken
 * over changes nothing and learns `LeaseLost`. Every time written comes from
 * the caller or Effect's `Clock`, never from the database's clock, so that
 * tests in virtual time see the times they set.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqlError from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { Delivery, type DeliveryRecord, Recipient } from "../Domain/Delivery.js"
import { HistoryPruned, LeaseLost, NothingToResume, ProductNotFound, RoundInProgress, StorageUnavailable } from "../Domain/Errors.js"
import { type ProductId, RestockRound, SubscriptionId, UserId } from "../Domain/Ids.js"
import { clampStock, Product, stockStatusOf } from "../Domain/Product.js"
import { Round } from "../Domain/Round.js"
import { type Subscriber, Subscription } from "../Domain/Subscription.js"
import { detect, type Dialect, violatesOneRoundInProgress } from "./Dialect.js"
import { type Lease, type Page, type ProductSummary, Repo, type RepoShape } from "./Repo.js"
import { makeRetention } from "./SqlRetention.js"
import {
  CountRow,
  decodeAll,
  decodeFirst,
  decodeRecipientRows,
  decodeSubscriberRows,
  DeliveryRow,
  LeaseRow,
  RecipientRow,
  RestockRoundRow,
  RoundRow,
  SubscriptionRow
} from "./Rows.js"

// Each decoder is made once, here: made per query, `decodeAll`'s `Schema.Array` was
// built on every call (~3 % of a `GET /products/{id}`'s CPU in the profile).
const decodeProducts = decodeAll(Product)
const decodeProduct = decodeFirst(Product)
const decodeLease = decodeFirst(LeaseRow)
const decodeCounts = decodeAll(CountRow)
const decodeSubscription = decodeFirst(SubscriptionRow)
const decodeCount = decodeFirst(Schema.Struct({ count: Schema.NonNegativeInt }))
const decodeSubscriptionId = decodeFirst(Schema.Struct({ id: SubscriptionId }))
const decodeRoundNumber = decodeFirst(Schema.Struct({ restockRound: RestockRound }))
const decodeRoundNumbers = decodeAll(Schema.Struct({ restockRound: RestockRound }))
const decodeRestockRounds = decodeAll(RestockRoundRow)
const decodeRecipients = decodeAll(RecipientRow)
const decodeRoundRows = decodeAll(RoundRow)
const decodeDeliveryRows = decodeAll(DeliveryRow)
const decodeRounds = Effect.fnUntraced(function*(rows: ReadonlyArray<unknown>) {
  const decoded = yield* decodeRoundRows(rows)
  return decoded.map((row) => new Round(row, { disableValidation: true }))
})
const decodeDeliveries = Effect.fnUntraced(function*(rows: ReadonlyArray<unknown>) {
  const decoded = yield* decodeDeliveryRows(rows)
  return decoded.map((row) => new Delivery(row, { disableValidation: true }))
})

// ---- queries

const productColumns = "p.id, p.name, p.restock_round AS restockRound, p.stock, p.stock_status AS stockStatus, " +
  "p.minimum_stock AS minimumStock, p.notify_per_unit AS notifyPerUnit"
const roundColumns = [
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
const deliveryColumns =
  "h.id, h.product_id AS productId, p.name AS productName, h.user_id AS userId, h.restock_round AS restockRound, h.sent_at AS sentAt"

/** The most rows one statement inserts or names in an `IN` list. */
const maxRowsPerStatement = 1_000

/** Page sizes are the caller's to validate; here they only have to be a sane integer. */
const limitOf = (requested: number): number =>
  Number.isFinite(requested) ? Math.min(Math.max(Math.trunc(requested), 1), 10_000) : 100

/**
 * The statements on hot paths, shared with the test that `EXPLAIN`s them so
 * that what is checked for index use is what runs.
 */
export const hotPathQueries = (sql: SqlClient.SqlClient) => ({
  /** Active subscribers after `afterId`, each flagged if it has a record of the round: a range scan of `ix_active_subscribers_in_order`, one probe of `uq_delivery` each. */
  pendingSubscribers: (productId: number, restockRound: number, afterId: number, limit: number) =>
    sql`SELECT s.id AS subscriptionId, s.user_id AS userId,
        CASE WHEN EXISTS (
          SELECT 1 FROM product_user_notification_history h
          WHERE h.product_id = ${productId} AND h.restock_round = ${restockRound} AND h.user_id = s.user_id
        ) THEN 1 ELSE 0 END AS alreadyRecorded
      FROM product_user_notification s
      WHERE s.product_id = ${productId} AND s.is_active = 1 AND s.id > ${afterId}
      ORDER BY s.id
      LIMIT ${sql.literal(String(limitOf(limit)))}`,
  /** A round's recipients in send order (as recorded, when each send succeeded): `ix_recipients_in_order`. */
  recipients: (productId: number, restockRound: number, afterId: number, limit: number) =>
    sql`SELECT h.id, h.user_id AS userId, h.sent_at AS sentAt
      FROM product_user_notification_history h
      WHERE h.product_id = ${productId} AND h.restock_round = ${restockRound} AND h.id > ${afterId}
      ORDER BY h.id
      LIMIT ${sql.literal(String(limitOf(limit)))}`,
  /** A user's deliveries after an id (SSE replay): `ix_deliveries_of_user`. */
  deliveriesOfUser: (userId: number, afterId: number, limit: number) =>
    sql`SELECT ${sql.literal(deliveryColumns)}
      FROM product_user_notification_history h
      JOIN product p ON p.id = h.product_id
      WHERE h.user_id = ${userId} AND h.id > ${afterId}
      ORDER BY h.id
      LIMIT ${sql.literal(String(limitOf(limit)))}`,
  /**
   * The rows of a recorded batch: `uq_delivery`, one probe per user. Named on
   * MySQL: `ix_recipients_in_order` covers these columns too, and reading the
   * whole round through it would look cheaper to the optimizer in a round of
   * a few thousand (SQLite's planner takes the unique index by itself).
   */
  recordedDeliveries: (productId: number, restockRound: number, userIds: ReadonlyArray<number>) =>
    sql`SELECT h.id, h.user_id AS userId, h.sent_at AS sentAt
      FROM product_user_notification_history h ${
      sql.literal(sql.onDialectOrElse({ mysql: () => "FORCE INDEX (uq_delivery)", orElse: () => "" }))
    }
      WHERE h.product_id = ${productId} AND h.restock_round = ${restockRound} AND h.user_id IN ${sql.in(userIds)}`
})

/** Maps database failures to `StorageUnavailable`, naming the operation; other errors pass. */
const orUnavailable = (operation: string) =>
<A, E, R>(
  self: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, SqlError.SqlError> | StorageUnavailable, R> =>
  Effect.mapError(self, (error) =>
    error instanceof SqlError.SqlError
      ? StorageUnavailable.fromCause(`database error in ${operation}`, error.cause ?? error)
      : error as Exclude<E, SqlError.SqlError>)

const chunksOf = <A>(items: ReadonlyArray<A>, size: number): ReadonlyArray<ReadonlyArray<A>> => {
  const chunks: Array<ReadonlyArray<A>> = []
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size))
  return chunks
}

const currentTime = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis))

const leaseLost = (productId: ProductId, restockRound: RestockRound, owner: string) =>
  new LeaseLost({
    productId,
    restockRound,
    message: `round ${restockRound} of product ${productId} is no longer in progress under ${owner}`
  })

/** Why the latest round cannot be resumed, for `NothingToResume`. */
const whyNotResumable = (round: Round, lease: Option.Option<{ readonly expiresAt: Date }>): string => {
  switch (round.status) {
    case "COMPLETED":
      return `round ${round.restockRound} completed`
    case "CANCELED_BY_SOLD_OUT":
      return `round ${round.restockRound} ended because the product sold out`
    case "CANCELED_BY_ERROR":
      return `round ${round.restockRound} was resumed by another request`
    case "IN_PROGRESS":
      return Option.match(lease, {
        onNone: () => `round ${round.restockRound} is still being sent`,
        onSome: ({ expiresAt }) =>
          `round ${round.restockRound} is still being sent (its dispatcher's lease runs until ${expiresAt.toISOString()})`
      })
  }
}

/** The adapter over the `SqlClient` in context, speaking `dialect`. */
export const makeWithDialect = (dialect: Dialect): Effect.Effect<RepoShape, never, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const queries = hotPathQueries(sql)
    const at = dialect.timestamp

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
    const transaction = <A, E, R>(self: Effect.Effect<A, E, R>) =>
      sql.withTransaction(self).pipe(
        Effect.catchSomeDefect((defect) =>
          defect instanceof SqlError.SqlError ? Option.some(Effect.fail(defect)) : Option.none()
        ),
        Effect.retry({
          times: 3,
          while: (error) => error instanceof SqlError.SqlError && dialect.isDeadlock(error)
        })
      )

    // ---- reads shared by several methods

    const findProduct = (id: ProductId) =>
      sql`SELECT ${sql.literal(productColumns)} FROM product p WHERE p.id = ${id}`.pipe(
        Effect.flatMap(decodeProduct)
      )

    const productExists = (id: ProductId) =>
      sql`SELECT id FROM product WHERE id = ${id}`.pipe(Effect.map((rows) => rows.length > 0))

    const requireProduct = (id: ProductId) =>
      Effect.flatMap(productExists(id), (exists) => (exists ? Effect.void : Effect.fail(ProductNotFound.of(id))))

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

    // ---- products

    /**
     * `stock_status` as SPEC §3.10 has it, from a stock and a minimum that are
     * each the value being written or, when that one is not written, the
     * row's column (which the statement then does not assign, so MySQL's
     * left-to-right assignments and SQLite's old-row reads agree).
     */
    const stockStatusFrom = (stock: number | undefined, minimumStock: number | undefined) =>
      stock !== undefined && minimumStock !== undefined
        ? sql`${stockStatusOf(stock, minimumStock)}`
        : sql`CASE WHEN ${stock ?? sql.literal("stock")} > ${minimumStock ?? sql.literal("minimum_stock")}
            THEN 'IN_STOCK' ELSE 'OUT_OF_STOCK' END`

    const upsertProduct: RepoShape["upsertProduct"] = (id, fields) =>
      Effect.gen(function*() {
        const now = at(yield* currentTime)
        const stock = fields.stock === undefined ? undefined : clampStock(fields.stock)
        const minimumStock = fields.minimumStock === undefined ? undefined : clampStock(fields.minimumStock)
        const changes: Array<Statement.Fragment> = []
        if (fields.name !== undefined) changes.push(sql`name = ${fields.name}`)
        if (stock !== undefined || minimumStock !== undefined) {
          changes.push(sql`stock_status = ${stockStatusFrom(stock, minimumStock)}`)
        }
        if (stock !== undefined) changes.push(sql`stock = ${stock}`)
        if (minimumStock !== undefined) changes.push(sql`minimum_stock = ${minimumStock}`)
        if (fields.notifyPerUnit !== undefined) changes.push(sql`notify_per_unit = ${fields.notifyPerUnit}`)
        if (changes.length > 0) changes.push(sql`updated_at = ${now}`)
        yield* dialect.insertOrUpdate(
          "product",
          sql.insert({
            id,
            name: fields.name ?? `Product ${id}`,
            restock_round: 0,
            stock: stock ?? 0,
            stock_status: stockStatusOf(stock ?? 0, minimumStock ?? 0),
            minimum_stock: minimumStock ?? 0,
            notify_per_unit: fields.notifyPerUnit ?? null,
            created_at: now,
            updated_at: now
          }),
          ["id"],
          changes
        )
        return yield* findProduct(id).pipe(
          Effect.flatMap(Option.match({
            onNone: () => Effect.dieMessage(`product ${id} vanished right after it was written`),
            onSome: Effect.succeed
          }))
        )
      }).pipe(orUnavailable("upsertProduct"))

    const getProduct: RepoShape["getProduct"] = (id) => findProduct(id).pipe(orUnavailable("getProduct"))

    const setStock: RepoShape["setStock"] = (id, requested) =>
      Effect.gen(function*() {
        const stock = clampStock(requested)
        const now = at(yield* currentTime)
        // Against the row's own minimum, in the same statement: no read between that could go stale.
        const result = yield* sql`UPDATE product
          SET stock = ${stock}, stock_status = ${stockStatusFrom(stock, undefined)}, updated_at = ${now}
          WHERE id = ${id}`.raw
        if (dialect.affectedRows(result) === 0) return yield* ProductNotFound.of(id)
        return yield* findProduct(id).pipe(
          Effect.flatMap(Option.match({ onNone: () => Effect.fail(ProductNotFound.of(id)), onSome: Effect.succeed }))
        )
      }).pipe(orUnavailable("setStock"))

    const listProducts: RepoShape["listProducts"] = ({ afterId, limit }) =>
      Effect.gen(function*() {
        const pageSize = limitOf(limit)
        const products = yield* sql`SELECT ${sql.literal(productColumns)} FROM product p
          WHERE p.id > ${afterId ?? 0} ORDER BY p.id LIMIT ${sql.literal(String(pageSize + 1))}`.pipe(
          Effect.flatMap(decodeProducts)
        )
        const page = products.slice(0, pageSize)
        if (page.length === 0) return { items: [], nextAfterId: null }
        const ids = page.map((product) => product.id)
        const counts = yield* sql`SELECT product_id AS productId, COUNT(*) AS count FROM product_user_notification
          WHERE product_id IN ${sql.in(ids)} AND is_active = 1 GROUP BY product_id`.unprepared.pipe(
          Effect.flatMap(decodeCounts)
        )
        // A product's latest round is the one numbered by its `restock_round`:
        // `openRound` bumps one and inserts the other in the same transaction.
        const latestRounds = yield* sql`SELECT ${sql.literal(roundColumns)} FROM product_notification_history h
          JOIN product p ON p.id = h.product_id AND h.restock_round = p.restock_round
          WHERE p.id IN ${sql.in(ids)}`.unprepared.pipe(Effect.flatMap(decodeRounds))
        const countOf = new Map(counts.map((row) => [row.productId, row.count]))
        const roundOf = new Map(latestRounds.map((round) => [round.productId as number, round]))
        const items = page.map((product): ProductSummary => ({
          product,
          activeSubscribers: countOf.get(product.id) ?? 0,
          latestRound: roundOf.get(product.id) ?? null
        }))
        return { items, nextAfterId: products.length > pageSize ? page[page.length - 1]!.id : null }
      }).pipe(orUnavailable("listProducts"))

    // ---- subscriptions

    const subscribe: RepoShape["subscribe"] = (productId, userId) =>
      Effect.gen(function*() {
        yield* requireProduct(productId)
        const now = at(yield* currentTime)
        yield* dialect.insertOrUpdate(
          "product_user_notification",
          sql.insert({ product_id: productId, user_id: userId, is_active: 1, created_at: now, updated_at: now }),
          ["product_id", "user_id"],
          [
            // Before `is_active`: MySQL evaluates assignments left to right on the
            // updated row, SQLite on the old one; this order reads the old value on both.
            sql`updated_at = CASE WHEN is_active = 1 THEN updated_at ELSE ${now} END`,
            sql`is_active = 1`
          ]
        )
        const rows = yield* sql`SELECT product_id AS productId, user_id AS userId, is_active AS active, created_at AS subscribedAt
          FROM product_user_notification WHERE product_id = ${productId} AND user_id = ${userId}`
        const row = yield* decodeSubscription(rows).pipe(
          Effect.flatMap(Option.match({
            onNone: () => Effect.dieMessage(`the subscription of user ${userId} to product ${productId} vanished`),
            onSome: Effect.succeed
          }))
        )
        return new Subscription(row, { disableValidation: true })
      }).pipe(orUnavailable("subscribe"))

    const unsubscribe: RepoShape["unsubscribe"] = (productId, userId) =>
      Effect.gen(function*() {
        yield* requireProduct(productId)
        const now = at(yield* currentTime)
        yield* sql`UPDATE product_user_notification SET is_active = 0, updated_at = ${now}
          WHERE product_id = ${productId} AND user_id = ${userId} AND is_active = 1`
      }).pipe(orUnavailable("unsubscribe"))

    const countActiveSubscribers: RepoShape["countActiveSubscribers"] = (productId) =>
      sql`SELECT COUNT(*) AS count FROM product_user_notification
        WHERE product_id = ${productId} AND is_active = 1`.pipe(
        Effect.flatMap(decodeCount),
        Effect.map(Option.match({ onNone: () => 0, onSome: (row) => row.count })),
        orUnavailable("countActiveSubscribers")
      )

    const subscriptionIdOf: RepoShape["subscriptionIdOf"] = (productId, userId) =>
      sql`SELECT id FROM product_user_notification WHERE product_id = ${productId} AND user_id = ${userId}`.pipe(
        Effect.flatMap(decodeSubscriptionId),
        Effect.map(Option.map((row) => row.id)),
        orUnavailable("subscriptionIdOf")
      )

    const pendingSubscribers: RepoShape["pendingSubscribers"] = (productId, { after, pageSize, restockRound }) => {
      const size = limitOf(pageSize)
      const page = (afterId: number) =>
        queries.pendingSubscribers(productId, restockRound, afterId, size).pipe(
          Effect.flatMap(decodeSubscriberRows),
          orUnavailable("pendingSubscribers")
        )
      // The next page is read only when the consumer pulls past this one.
      return Stream.paginateChunkEffect(after ?? 0, (afterId: number) =>
        Effect.map(page(afterId), (rows) =>
          [
            Chunk.unsafeFromArray<Subscriber>(rows),
            rows.length < size ? Option.none() : Option.some<number>(rows[rows.length - 1]!.subscriptionId)
          ] as const))
    }

    // ---- rounds

    const roundInProgressOf = (productId: ProductId) =>
      sql`SELECT restock_round AS restockRound FROM product_notification_history WHERE in_progress_product_id = ${productId}`
        .pipe(
          Effect.flatMap(decodeRoundNumber),
          Effect.map(Option.map((row) => row.restockRound))
        )

    const openRound: RepoShape["openRound"] = (productId, lease, now, options) =>
      transaction(
        Effect.gen(function*() {
          // The row lock taken here queues concurrent openers of one product behind each other.
          const bumped = yield* sql`UPDATE product SET restock_round = restock_round + 1, updated_at = ${at(now)}
            WHERE id = ${productId}`.raw
          if (dialect.affectedRows(bumped) === 0) return yield* ProductNotFound.of(productId)
          const [current] = yield* sql`SELECT restock_round AS restockRound FROM product WHERE id = ${productId}`.pipe(
            Effect.flatMap(decodeRoundNumbers)
          )
          const restockRound = current!.restockRound
          const waitingUntil = options?.waitingUntil ?? null
          yield* sql`INSERT INTO product_notification_history ${
            sql.insert({
              product_id: productId,
              restock_round: restockRound,
              status: "IN_PROGRESS",
              sent_count: 0,
              started_at: at(now),
              updated_at: at(now),
              lease_owner: lease.owner,
              lease_expires_at: at(lease.expiresAt),
              waiting_until: waitingUntil === null ? null : at(waitingUntil)
            })
          }`.pipe(
            // The unique guard refused a second IN_PROGRESS round: failing rolls the bump back.
            Effect.catchIf(
              (error) => violatesOneRoundInProgress(dialect, error),
              () => Effect.fail(RoundInProgress.of(productId))
            )
          )
          return new Round({
            productId,
            restockRound,
            status: "IN_PROGRESS",
            lastSentUserId: null,
            sentCount: 0,
            startedAt: now,
            updatedAt: now,
            finishedAt: null,
            error: null,
            waitingUntil
          })
        })
      ).pipe(
        Effect.catchTag("RoundInProgress", () =>
          roundInProgressOf(productId).pipe(
            Effect.flatMap((running) => Effect.fail(RoundInProgress.of(productId, Option.getOrUndefined(running))))
          )),
        orUnavailable("openRound")
      )

    const reopenRound: RepoShape["reopenRound"] = (productId, lease, now, options) =>
      transaction(
        Effect.gen(function*() {
          // Locking the product row serialises this with `openRound`, so "latest" stays latest.
          const [product] = yield* sql`SELECT restock_round AS restockRound FROM product WHERE id = ${productId} ${dialect.forUpdate}`
            .pipe(Effect.flatMap(decodeRestockRounds))
          if (product === undefined) return yield* ProductNotFound.of(productId)
          if (product.restockRound === 0) return yield* NothingToResume.of(productId, "it has never been restocked")
          const restockRound = RestockRound.make(product.restockRound)
          // A wait left by a dispatcher that is gone says nothing of this one's: it is replaced.
          const waitingUntil = options?.waitingUntil ?? null
          const reopened = yield* sql`UPDATE product_notification_history
            SET status = 'IN_PROGRESS', lease_owner = ${lease.owner}, lease_expires_at = ${at(lease.expiresAt)},
                finished_at = NULL, error = NULL, updated_at = ${at(now)},
                waiting_until = ${waitingUntil === null ? null : at(waitingUntil)}
            WHERE product_id = ${productId} AND restock_round = ${restockRound}
              AND (status = 'CANCELED_BY_ERROR'
                OR (status = 'IN_PROGRESS' AND (lease_expires_at IS NULL OR lease_expires_at < ${at(now)})))`.raw.pipe(
            Effect.catchIf(
              (error) => violatesOneRoundInProgress(dialect, error),
              () => Effect.fail(NothingToResume.of(productId, "another round is in progress"))
            )
          )
          if (dialect.affectedRows(reopened) === 0) {
            const round = yield* findRound(productId, restockRound)
            const lease = yield* findLease(productId, restockRound)
            return yield* NothingToResume.of(
              productId,
              Option.match(round, {
                onNone: () => `round ${restockRound} has no history`,
                onSome: (round) => whyNotResumable(round, lease)
              })
            )
          }
          return yield* roundJustWritten(productId, restockRound)
        })
      ).pipe(orUnavailable("reopenRound"))

    const renewLease: RepoShape["renewLease"] = (productId, restockRound, lease) =>
      sql`UPDATE product_notification_history SET lease_expires_at = ${at(lease.expiresAt)}
        WHERE product_id = ${productId} AND restock_round = ${restockRound}
          AND status = 'IN_PROGRESS' AND lease_owner = ${lease.owner}`.raw.pipe(
        Effect.flatMap((result) =>
          dialect.affectedRows(result) === 0 ? Effect.fail(leaseLost(productId, restockRound, lease.owner)) : Effect.void
        ),
        orUnavailable("renewLease")
      )

    /** The rows already recorded for these users in the round. */
    const recordedRows = (productId: ProductId, restockRound: RestockRound, userIds: ReadonlyArray<UserId>) =>
      userIds.length === 0
        ? Effect.succeed([])
        : queries.recordedDeliveries(productId, restockRound, userIds).unprepared.pipe(
          Effect.flatMap(decodeRecipientRows)
        )

    /**
     * Inserts one slice of a batch, skipping users already recorded in the
     * round; answers how many rows it added and every row of the slice's users.
     *
     * Unprepared: each number of rows is another statement text, and a
     * prepared statement per text and per pooled connection would pile up in
     * the client and against the server's `max_prepared_stmt_count` (16,382 by
     * default, shared by every instance) over a day of batches of every size.
     */
    const insertSlice = (productId: ProductId, restockRound: RestockRound, slice: ReadonlyArray<DeliveryRecord>) =>
      Effect.gen(function*() {
        const rows = sql.insert(slice.map((delivery) => ({
          product_id: productId,
          user_id: delivery.userId,
          restock_round: restockRound,
          sent_at: at(delivery.sentAt)
        })))
        const table = "product_user_notification_history"
        if (!dialect.insertReturning) {
          yield* dialect.insertSkippingDuplicates(table, rows).unprepared
          const [changed] = yield* sql<{ readonly n: number }>`SELECT ${dialect.changesOfLastStatement} AS n`
          const rowsOfSlice = yield* recordedRows(productId, restockRound, slice.map((delivery) => delivery.userId))
          return { inserted: Number(changed?.n ?? 0), rows: rowsOfSlice }
        }
        // The inserted rows come back with the insert; only users recorded
        // before (a rare repeat) need reading.
        const returned = yield* dialect.insertSkippingDuplicates(table, rows, "id, user_id AS userId, sent_at AS sentAt")
          .unprepared.pipe(Effect.flatMap(decodeRecipientRows))
        const insertedUsers = new Set<number>(returned.map((row) => row.userId))
        const repeated = [...new Set(slice.map((delivery) => delivery.userId))].filter((userId) => !insertedUsers.has(userId))
        return { inserted: returned.length, rows: [...returned, ...(yield* recordedRows(productId, restockRound, repeated))] }
      })

    /**
     * Four round trips: BEGIN, the fence (which also moves the counters), the
     * insert that answers its rows, COMMIT. The round is not read back: the
     * fence proves that its owner is the only writer, so the round after the
     * batch is the caller's round with this batch's changes (read back only
     * when a user was recorded before).
     */
    const recordDeliveries: RepoShape["recordDeliveries"] = (round, owner, batch) =>
      transaction(
        Effect.gen(function*() {
          const { productId, restockRound } = round
          const recording = batch.deliveries.length
          // The fence goes first: it locks the round row until commit, so the lease cannot
          // change hands between this check and the inserts. It counts every delivery as new;
          // a user recorded before (a rare repeat) is taken back off below.
          const assignments: Array<Statement.Fragment> = [sql`updated_at = ${at(batch.now)}`]
          if (recording > 0) assignments.push(sql`sent_count = sent_count + ${recording}`)
          if (batch.lastSentUserId !== undefined) assignments.push(sql`last_sent_user_id = ${batch.lastSentUserId}`)
          const fenced = yield* sql`UPDATE product_notification_history SET ${sql.csv(assignments)}
            WHERE product_id = ${productId} AND restock_round = ${restockRound}
              AND status = 'IN_PROGRESS' AND lease_owner = ${owner}`.raw
          if (dialect.affectedRows(fenced) === 0) return yield* leaseLost(productId, restockRound, owner)

          let inserted = 0
          const rows: Array<RecipientRow> = []
          for (const slice of chunksOf(batch.deliveries, maxRowsPerStatement)) {
            const recorded = yield* insertSlice(productId, restockRound, slice)
            inserted += recorded.inserted
            rows.push(...recorded.rows)
          }
          // Only the rows this batch added count: a user already recorded is not sent twice.
          // Such a repeat can also be this very batch, committed by an attempt whose answer was
          // lost: then `round` is behind what is stored, so the round is read back (five trips).
          const repeated = inserted < recording
          if (repeated) {
            yield* sql`UPDATE product_notification_history SET sent_count = sent_count - ${recording - inserted}
              WHERE product_id = ${productId} AND restock_round = ${restockRound}`
          }

          const deliveries = rows
            .sort((a, b) => a.id - b.id)
            .map((row) =>
              new Delivery({
                id: row.id,
                productId,
                productName: batch.productName,
                userId: row.userId,
                restockRound,
                sentAt: row.sentAt
              }, { disableValidation: true })
            )
          const written = repeated
            ? yield* roundJustWritten(productId, restockRound)
            : new Round({
              ...round,
              sentCount: round.sentCount + inserted,
              lastSentUserId: batch.lastSentUserId ?? round.lastSentUserId,
              updatedAt: batch.now
            }, { disableValidation: true })
          return { deliveries, round: written }
        })
      ).pipe(orUnavailable("recordDeliveries"))

    const finishRound: RepoShape["finishRound"] = (productId, restockRound, owner, outcome) =>
      transaction(
        Effect.gen(function*() {
          const finished = yield* sql`UPDATE product_notification_history
            SET status = ${outcome.status}, error = ${outcome.error}, finished_at = ${at(outcome.now)},
                updated_at = ${at(outcome.now)}, lease_owner = NULL, lease_expires_at = NULL, waiting_until = NULL
            WHERE product_id = ${productId} AND restock_round = ${restockRound}
              AND status = 'IN_PROGRESS' AND lease_owner = ${owner}`.raw
          if (dialect.affectedRows(finished) === 0) return yield* leaseLost(productId, restockRound, owner)
          return yield* roundJustWritten(productId, restockRound)
        })
      ).pipe(orUnavailable("finishRound"))

    const setWaitingUntil: RepoShape["setWaitingUntil"] = (productId, restockRound, owner, waitingUntil, now) =>
      transaction(
        Effect.gen(function*() {
          // `updated_at` moves too: the progress stream tells a changed round by it.
          const written = yield* sql`UPDATE product_notification_history
            SET waiting_until = ${waitingUntil === null ? null : at(waitingUntil)}, updated_at = ${at(now)}
            WHERE product_id = ${productId} AND restock_round = ${restockRound}
              AND status = 'IN_PROGRESS' AND lease_owner = ${owner}`.raw
          if (dialect.affectedRows(written) === 0) return yield* leaseLost(productId, restockRound, owner)
          return yield* roundJustWritten(productId, restockRound)
        })
      ).pipe(orUnavailable("setWaitingUntil"))

    const getRound: RepoShape["getRound"] = (productId, restockRound) =>
      findRound(productId, restockRound).pipe(orUnavailable("getRound"))

    const latestRound: RepoShape["latestRound"] = (productId) =>
      sql`SELECT ${sql.literal(roundColumns)} FROM product_notification_history h
        WHERE h.product_id = ${productId} ORDER BY h.restock_round DESC LIMIT 1`.pipe(
        Effect.flatMap(decodeRounds),
        Effect.map((rounds) => Option.fromNullable(rounds[0])),
        orUnavailable("latestRound")
      )

    const listRounds: RepoShape["listRounds"] = (productId) =>
      sql`SELECT ${sql.literal(roundColumns)} FROM product_notification_history h
        WHERE h.product_id = ${productId} ORDER BY h.restock_round DESC`.pipe(
        Effect.flatMap(decodeRounds),
        orUnavailable("listRounds")
      )

    const leaseOf: RepoShape["leaseOf"] = (productId, restockRound) =>
      findLease(productId, restockRound).pipe(
        Effect.map(Option.map((row): Lease => ({ owner: row.owner, expiresAt: row.expiresAt }))),
        orUnavailable("leaseOf")
      )

    // ---- deliveries

    const recipients: RepoShape["recipients"] = (productId, restockRound, { afterId, limit }) =>
      Effect.gen(function*() {
        // Set with the delete of any of the round's records, in its transaction (SqlRetention.ts):
        // a page of a pruned round would pass for the whole list, so none is answered.
        const [flag] = yield* sql<{ readonly pruned: number }>`SELECT records_pruned AS pruned FROM product_notification_history
          WHERE product_id = ${productId} AND restock_round = ${restockRound}`
        if (flag !== undefined && Number(flag.pruned) === 1) return yield* HistoryPruned.of(productId, restockRound)
        const pageSize = limitOf(limit)
        const rows = yield* queries.recipients(productId, restockRound, afterId ?? 0, pageSize + 1).pipe(
          Effect.flatMap(decodeRecipients)
        )
        const page = rows.slice(0, pageSize)
        return {
          items: page.map((row) => new Recipient({ userId: row.userId, sentAt: row.sentAt }, { disableValidation: true })),
          nextAfterId: rows.length > pageSize ? page[page.length - 1]!.id : null
        } satisfies Page<Recipient>
      }).pipe(orUnavailable("recipients"))

    const deliveriesOfUser: RepoShape["deliveriesOfUser"] = (userId, { afterId, limit }) =>
      queries.deliveriesOfUser(userId, afterId ?? 0, limit).pipe(
        Effect.flatMap(decodeDeliveries),
        orUnavailable("deliveriesOfUser")
      )

    const ping: RepoShape["ping"] = sql`SELECT 1 AS ok`.pipe(
      Effect.asVoid,
      orUnavailable("ping")
    )

    const retention = makeRetention(sql, dialect, { transaction, orUnavailable })

    return Repo.of({
      ...retention,
      upsertProduct,
      getProduct,
      setStock,
      listProducts,
      subscribe,
      unsubscribe,
      countActiveSubscribers,
      subscriptionIdOf,
      pendingSubscribers,
      openRound,
      reopenRound,
      renewLease,
      recordDeliveries,
      finishRound,
      setWaitingUntil,
      getRound,
      latestRound,
      listRounds,
      leaseOf,
      recipients,
      deliveriesOfUser,
      ping
    })
  })

/** The adapter over the `SqlClient` in context. */
export const make: Effect.Effect<RepoShape, never, SqlClient.SqlClient> = Effect.flatMap(detect, makeWithDialect)

/** `Repo` over the `SqlClient` in context (build that with `Database.layer`). */
export const layer: Layer.Layer<Repo, never, SqlClient.SqlClient> = Layer.effect(Repo, make)

