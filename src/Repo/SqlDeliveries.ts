/**
 * The deliveries part of the SQL `Repo` adapter: recording a batch of sends
 * (fenced by the round's lease, each user at most once a round), a round's
 * recipients and a user's deliveries.
 */
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import { Delivery, type DeliveryRecord, Recipient } from "../Domain/Delivery.js"
import { HistoryPruned } from "../Domain/Errors.js"
import type { ProductId, RestockRound, UserId } from "../Domain/Ids.js"
import { Round } from "../Domain/Round.js"
import type { Page, RecordedBatch, RepoShape } from "./Repo.js"
import { inCallbackTransaction, type Step } from "./CallbackTransaction.js"
import { decodeAll, decodeRecipientRows, DeliveryRow, RecipientRow, recipientRowsOf } from "./Rows.js"
import { leaseLost, limitOf, maxRowsPerStatement, orUnavailable, type SqlContext } from "./SqlShared.js"

const decodeRecipients = decodeAll(RecipientRow)
const decodeDeliveryRows = decodeAll(DeliveryRow)
const decodeDeliveries = Effect.fnUntraced(function*(rows: ReadonlyArray<unknown>) {
  const decoded = yield* decodeDeliveryRows(rows)
  return decoded.map((row) => new Delivery(row, { disableValidation: true }))
})

const chunksOf = <A>(items: ReadonlyArray<A>, size: number): ReadonlyArray<ReadonlyArray<A>> => {
  const chunks: Array<ReadonlyArray<A>> = []
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size))
  return chunks
}

/** A batch's recorded rows as deliveries, in id order (the order they were recorded in). */
const deliveriesOf = (round: Round, productName: string, rows: ReadonlyArray<RecipientRow>): Array<Delivery> =>
  [...rows].sort((a, b) => a.id - b.id).map((row) =>
    new Delivery({
      id: row.id,
      productId: round.productId,
      productName,
      userId: row.userId,
      restockRound: round.restockRound,
      sentAt: row.sentAt
    }, { disableValidation: true })
  )

/**
 * The round after a batch that added `inserted` records: computed, not read
 * back, since the fence proves its owner is the only writer.
 */
const roundAfter = (
  round: Round,
  inserted: number,
  batch: { readonly lastSentUserId: UserId | undefined; readonly now: Date }
): Round =>
  new Round({
    ...round,
    sentCount: round.sentCount + inserted,
    lastSentUserId: batch.lastSentUserId ?? round.lastSentUserId,
    updatedAt: batch.now
  }, { disableValidation: true })

export const makeDeliveries = (
  { callbackPool, dialect, queries, reads, sql, transaction }: SqlContext
): Pick<RepoShape, "recordDeliveries" | "recipients" | "deliveriesOfUser"> => {
  const at = dialect.timestamp

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
  const recordInTransaction: RepoShape["recordDeliveries"] = (round, owner, batch) =>
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

        const deliveries = deliveriesOf(round, batch.productName, rows)
        const written = repeated
          ? yield* reads.roundJustWritten(productId, restockRound)
          : roundAfter(round, inserted, batch)
        return { deliveries, round: written }
      })
    ).pipe(orUnavailable("recordDeliveries"))

  /**
   * The same batch, on MariaDB, as four round trips on one pooled connection
   * (`START TRANSACTION`, the fence, the insert that answers its rows,
   * `COMMIT`), one chain of the driver's callbacks (`CallbackTransaction.ts`).
   * At 500/s a batch comes every 6–7 sends. Measured one batch of 7 after
   * another, the two forms alternated in one sitting: as four effects on a
   * reserved connection a batch allocated 121 KiB and took 1.2–1.3 ms of
   * CPU; as this chain, 65 KiB and 0.75–0.86 ms. (`recordInTransaction`
   * costs more again: `withTransaction` and the statement builder.)
   * Answers `undefined`, having rolled back, when a user of the batch was
   * recorded before (a rare repeat, which needs the correction and the
   * read-back of the general path), a statement failed, or there is no
   * driver pool to use: the general path then runs the batch again, which is
   * safe whatever this attempt left (inserts skip recorded users, the fence
   * holds, a rolled-back or lost commit is rerun as a repeat).
   */
  const recordOnOneConnection = (
    round: Round,
    owner: string,
    batch: Parameters<RepoShape["recordDeliveries"]>[2]
  ): Effect.Effect<RecordedBatch | "lease lost" | undefined> => {
    const { productId, restockRound } = round
    const recording = batch.deliveries.length
    const now = at(batch.now)
    let fence = "UPDATE product_notification_history SET updated_at = ?"
    const fenceParams: Array<unknown> = [now]
    if (recording > 0) {
      fence += ", sent_count = sent_count + ?"
      fenceParams.push(recording)
    }
    if (batch.lastSentUserId !== undefined) {
      fence += ", last_sent_user_id = ?"
      fenceParams.push(batch.lastSentUserId)
    }
    fence += " WHERE product_id = ? AND restock_round = ? AND status = 'IN_PROGRESS' AND lease_owner = ?"
    fenceParams.push(productId, restockRound, owner)
    const insertParams: Array<unknown> = []
    for (const delivery of batch.deliveries) insertParams.push(productId, delivery.userId, restockRound, at(delivery.sentAt))
    const insert = "INSERT IGNORE INTO product_user_notification_history (product_id, user_id, restock_round, sent_at) VALUES " +
      Array.from({ length: recording }, () => "(?, ?, ?, ?)").join(", ") + " RETURNING id, user_id AS userId, sent_at AS sentAt"

    const done = (rows: ReadonlyArray<RecipientRow>): Step<RecordedBatch | "lease lost" | undefined> => ({
      _tag: "Commit",
      value: { deliveries: deliveriesOf(round, batch.productName, rows), round: roundAfter(round, rows.length, batch) }
    })
    const script: Step<RecordedBatch | "lease lost" | undefined> = {
      _tag: "Run",
      statement: { sql: fence, values: fenceParams },
      onAnswer: (fenced) => {
        if (dialect.affectedRows(fenced) === 0) return { _tag: "Rollback", value: "lease lost" }
        if (recording === 0) return done([])
        // Unprepared like every statement of the chain (and as in `insertSlice`: a prepared
        // statement per batch size would pile up).
        return {
          _tag: "Run",
          statement: { sql: insert, values: insertParams },
          onAnswer: (answered) => {
            const rows = Array.isArray(answered) ? recipientRowsOf(answered) : undefined
            return rows !== undefined && rows.length === recording ? done(rows) : { _tag: "Rollback", value: undefined }
          }
        }
      }
    }
    return Effect.flatMap(callbackPool, (pool) => pool === undefined ? Effect.succeed(undefined) : inCallbackTransaction(pool, script)).pipe(
      // Any database failure: the general path runs the batch again, with its own retries.
      Effect.catchTag("SqlError", () => Effect.succeed(undefined))
    )
  }

  const recordDeliveries: RepoShape["recordDeliveries"] = (round, owner, batch) =>
    dialect.name === "mysql" && dialect.insertReturning && batch.deliveries.length <= maxRowsPerStatement
      ? Effect.flatMap(recordOnOneConnection(round, owner, batch), (recorded) =>
        recorded === "lease lost"
          ? leaseLost(round.productId, round.restockRound, owner)
          : recorded === undefined
          ? recordInTransaction(round, owner, batch)
          : Effect.succeed(recorded))
      : recordInTransaction(round, owner, batch)

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

  return { recordDeliveries, recipients, deliveriesOfUser }
}
