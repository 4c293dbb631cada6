/**
 * The rounds part of the SQL `Repo` adapter: opening a round, resuming one,
 * its lease, its end and its wait for a send window, and reading rounds.
 *
 * Round writes are fenced: each one names the round, `status = 'IN_PROGRESS'`
 * and the lease owner in its `WHERE`, so a dispatcher whose round was taken
 * over changes nothing and learns `LeaseLost`.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { NothingToResume, ProductNotFound, RoundInProgress } from "../Domain/Errors.js"
import { type ProductId, RestockRound } from "../Domain/Ids.js"
import { Round } from "../Domain/Round.js"
import { violatesOneRoundInProgress } from "./Dialect.js"
import type { RepoShape } from "./Repo.js"
import { decodeAll, decodeFirst, RestockRoundRow } from "./Rows.js"
import { decodeRounds, leaseLost, orUnavailable, roundColumns, type SqlContext } from "./SqlShared.js"

const decodeRoundNumber = decodeFirst(Schema.Struct({ restockRound: RestockRound }))
const decodeRoundNumbers = decodeAll(Schema.Struct({ restockRound: RestockRound }))
const decodeRestockRounds = decodeAll(RestockRoundRow)

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

export const makeRounds = ({ dialect, reads, sql, transaction }: SqlContext): Pick<
  RepoShape,
  | "openRound"
  | "reopenRound"
  | "renewLease"
  | "finishRound"
  | "setWaitingUntil"
  | "getRound"
  | "latestRound"
  | "listRounds"
> => {
  const at = dialect.timestamp

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
          const round = yield* reads.findRound(productId, restockRound)
          const lease = yield* reads.findLease(productId, restockRound)
          return yield* NothingToResume.of(
            productId,
            Option.match(round, {
              onNone: () => `round ${restockRound} has no history`,
              onSome: (round) => whyNotResumable(round, lease)
            })
          )
        }
        return yield* reads.roundJustWritten(productId, restockRound)
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

  const finishRound: RepoShape["finishRound"] = (productId, restockRound, owner, outcome) =>
    transaction(
      Effect.gen(function*() {
        const finished = yield* sql`UPDATE product_notification_history
          SET status = ${outcome.status}, error = ${outcome.error}, finished_at = ${at(outcome.now)},
              updated_at = ${at(outcome.now)}, lease_owner = NULL, lease_expires_at = NULL, waiting_until = NULL
          WHERE product_id = ${productId} AND restock_round = ${restockRound}
            AND status = 'IN_PROGRESS' AND lease_owner = ${owner}`.raw
        if (dialect.affectedRows(finished) === 0) return yield* leaseLost(productId, restockRound, owner)
        return yield* reads.roundJustWritten(productId, restockRound)
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
        return yield* reads.roundJustWritten(productId, restockRound)
      })
    ).pipe(orUnavailable("setWaitingUntil"))

  const getRound: RepoShape["getRound"] = (productId, restockRound) =>
    reads.findRound(productId, restockRound).pipe(orUnavailable("getRound"))

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

  return { openRound, reopenRound, renewLease, finishRound, setWaitingUntil, getRound, latestRound, listRounds }
}
