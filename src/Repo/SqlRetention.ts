/**
 * The retention part of the SQL `Repo` adapter (SPEC §3.15–§3.16): the
 * pruning lease, the batches that delete expired delivery records, the
 * watermark of what was pruned, and the per-round flag behind 410
 * `HistoryPruned`.
 *
 * How "a round was pruned" is known, cheaply and exactly: the batch that
 * deletes any record of a round sets its `records_pruned` in the same
 * transaction, so the flag is set if and only if a record of the round is
 * gone, and reading it is one lookup of the round's row by its unique key.
 * (Comparing `sent_count` with a count of the round's rows would read every
 * row of a round of a million on each page; a per-round watermark would say
 * the same as the flag with more to keep right.)
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type { Dialect } from "./Dialect.js"
import { type PrunedBatch, type PruneCursor, PruningLeaseLost, type RepoShape } from "./Repo.js"
import { decodeAll, decodeFirst, Timestamp } from "./Rows.js"
import { orUnavailable, type SqlContext } from "./SqlShared.js"

/** The most records one batch reads and deletes: no statement holds many row locks, or for long. */
export const maxPruneBatch = 1_000

const ExpiredRow = Schema.Struct({
  id: Schema.Number,
  productId: Schema.Number,
  restockRound: Schema.Number,
  sentAt: Timestamp
})
const ResumableRow = Schema.Struct({
  productId: Schema.Number,
  restockRound: Schema.Number,
  status: Schema.String,
  waitingUntil: Schema.NullOr(Timestamp)
})
const WatermarkRow = Schema.Struct({ prunedThrough: Schema.Number })
const OldestRow = Schema.Struct({ sentAt: Schema.NullOr(Timestamp) })

const roundKey = (productId: number, restockRound: number) => `${productId}:${restockRound}`

/**
 * The retention's statements, shared with the tests that `EXPLAIN` them, so
 * that what is checked for index use is what runs. Times are bound as the
 * dialect stores them.
 */
export const retentionQueries = (sql: SqlClient.SqlClient, dialect: Dialect) => ({
  /**
   * Expired records, oldest first, after the cursor: a range of
   * `ix_history_sent_at` from the cursor's `sent_at` to the cutoff. Records
   * sharing the cursor's `sent_at` (to the millisecond) are few; the id
   * skips those already looked at.
   */
  expired: (cutoff: Date, after: PruneCursor | null, limit: number) =>
    after === null
      ? sql`SELECT id, product_id AS productId, restock_round AS restockRound, sent_at AS sentAt
          FROM product_user_notification_history
          WHERE sent_at < ${dialect.timestamp(cutoff)}
          ORDER BY sent_at, id
          LIMIT ${sql.literal(String(limit))}`
      : sql`SELECT id, product_id AS productId, restock_round AS restockRound, sent_at AS sentAt
          FROM product_user_notification_history
          WHERE sent_at >= ${dialect.timestamp(after.sentAt)} AND sent_at < ${dialect.timestamp(cutoff)}
            AND NOT (sent_at = ${dialect.timestamp(after.sentAt)} AND id <= ${after.id})
          ORDER BY sent_at, id
          LIMIT ${sql.literal(String(limit))}`,
  /**
   * The rounds whose records are kept: each product's latest round if it
   * can still be resumed. `ix_rounds_by_status` finds the rounds by status
   * (few: at most one `IN_PROGRESS` per product, and the rounds an error
   * ended), the product's primary key says which are latest. Their status and
   * `waiting_until` say, at no extra cost, whether a round is sending now.
   */
  resumableRounds: sql`SELECT h.product_id AS productId, h.restock_round AS restockRound,
      h.status AS status, h.waiting_until AS waitingUntil
    FROM product_notification_history h
    JOIN product p ON p.id = h.product_id AND p.restock_round = h.restock_round
    WHERE h.status IN ('IN_PROGRESS', 'CANCELED_BY_ERROR')`,
  /** The oldest record kept: the first entry of `ix_history_sent_at`. */
  oldest: sql`SELECT MIN(sent_at) AS sentAt FROM product_user_notification_history`
})

/** The retention methods of the adapter. */
export const makeRetention = (
  { dialect, sql, transaction }: SqlContext
): Pick<RepoShape, "claimPruning" | "releasePruning" | "pruneHistory" | "prunedThrough" | "oldestRecordSentAt"> => {
  const at = dialect.timestamp
  const queries = retentionQueries(sql, dialect)

  const claimPruning: RepoShape["claimPruning"] = (lease, now) =>
    sql`UPDATE history_retention SET lease_owner = ${lease.owner}, lease_expires_at = ${at(lease.expiresAt)}
      WHERE id = 1 AND (lease_owner IS NULL OR lease_owner = ${lease.owner} OR lease_expires_at < ${at(now)})`.raw.pipe(
      Effect.map((result) => dialect.affectedRows(result) > 0),
      orUnavailable("claimPruning")
    )

  const releasePruning: RepoShape["releasePruning"] = (owner) =>
    sql`UPDATE history_retention SET lease_owner = NULL, lease_expires_at = NULL
      WHERE id = 1 AND lease_owner = ${owner}`.pipe(Effect.asVoid, orUnavailable("releasePruning"))

  /** `(product_id = a AND restock_round = b) OR ...`: one probe of `uq_round` per round. */
  const anyRound = (keys: ReadonlyArray<{ readonly productId: number; readonly restockRound: number }>): Statement.Fragment =>
    sql.or(keys.map((key) => sql`(product_id = ${key.productId} AND restock_round = ${key.restockRound})`))

  const pruneHistory: RepoShape["pruneHistory"] = (owner, { after, cutoff, leaseExpiresAt, limit }) =>
    transaction(
      Effect.gen(function*() {
        // The fence goes first: it locks the one retention row until commit, so two pruners
        // never run a batch at once (a second one waits here, then finds it lost the lease),
        // and a pruner whose lease was taken over changes nothing.
        const fenced = yield* sql`UPDATE history_retention SET lease_expires_at = ${at(leaseExpiresAt)}
          WHERE id = 1 AND lease_owner = ${owner}`.raw
        if (dialect.affectedRows(fenced) === 0) return yield* new PruningLeaseLost({ owner })

        const size = Math.min(Math.max(Math.trunc(limit), 1), maxPruneBatch)
        const expired = yield* queries.expired(cutoff, after, size).pipe(Effect.flatMap(decodeAll(ExpiredRow)))
        const resumable = yield* queries.resumableRounds.pipe(Effect.flatMap(decodeAll(ResumableRow)))
        const kept = new Set(resumable.map((round) => roundKey(round.productId, round.restockRound)))
        // Waiting for its send window, a round in progress sends nothing.
        const roundSending = resumable.some((round) => round.status === "IN_PROGRESS" && round.waitingUntil === null)
        const doomed = expired.filter((row) => !kept.has(roundKey(row.productId, row.restockRound)))
        const last = expired.length === 0 ? null : { sentAt: expired[expired.length - 1]!.sentAt, id: expired[expired.length - 1]!.id }

        let deleted = 0
        if (doomed.length > 0) {
          // Unprepared: each batch size is another statement text (see `insertSlice` in SqlDeliveries.ts).
          yield* sql`DELETE FROM product_user_notification_history
            WHERE id IN ${sql.in(doomed.map((row) => row.id))}`.unprepared
          const [changed] = yield* sql<{ readonly n: number }>`SELECT ${dialect.changesOfLastStatement} AS n`
          deleted = Number(changed?.n ?? 0)
          const rounds = new Map<string, { productId: number; restockRound: number }>()
          for (const row of doomed) rounds.set(roundKey(row.productId, row.restockRound), row)
          yield* sql`UPDATE product_notification_history SET records_pruned = 1
            WHERE records_pruned = 0 AND (${anyRound([...rounds.values()])})`.unprepared
          const highest = Math.max(...doomed.map((row) => row.id))
          yield* sql`UPDATE history_retention
            SET pruned_through = CASE WHEN pruned_through < ${highest} THEN ${highest} ELSE pruned_through END
            WHERE id = 1`
        }
        const [watermark] = yield* sql`SELECT pruned_through AS prunedThrough FROM history_retention WHERE id = 1`.pipe(
          Effect.flatMap(decodeAll(WatermarkRow))
        )
        return {
          examined: expired.length,
          deleted,
          last,
          roundSending,
          prunedThrough: watermark?.prunedThrough ?? 0
        } satisfies PrunedBatch
      })
    ).pipe(orUnavailable("pruneHistory"))

  const prunedThrough: RepoShape["prunedThrough"] =
    sql`SELECT pruned_through AS prunedThrough FROM history_retention WHERE id = 1`.pipe(
      Effect.flatMap(decodeFirst(WatermarkRow)),
      Effect.map(Option.match({ onNone: () => 0, onSome: (row) => row.prunedThrough })),
      orUnavailable("prunedThrough")
    )

  const oldestRecordSentAt: RepoShape["oldestRecordSentAt"] = queries.oldest.pipe(
    Effect.flatMap(decodeFirst(OldestRow)),
    Effect.map(Option.flatMap((row) => Option.fromNullable(row.sentAt))),
    orUnavailable("oldestRecordSentAt")
  )

  return { claimPruning, releasePruning, pruneHistory, prunedThrough, oldestRecordSentAt }
}
