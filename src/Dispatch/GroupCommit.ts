/**
 * The group commit of one round: settled turns are recorded in batches, each
 * one transaction, and the round's contiguous successful prefix
 * (`last_sent_user_id`) advances over what has been recorded.
 *
 * Whatever has settled (at least one, at most a batch) is taken each time
 * the writer is free. A batch much smaller than the window waits a little
 * for more (a quarter of the window's time, at most 100 ms: 12.5 ms at 500/s,
 * 25 ms at 200/s; an eighth, at most 25 ms, cost two instances at 100/s each
 * 4.7–6.7 ms CPU per send against 4.1–5.6, measured) unless the window
 * is crowded: at low rates every send would otherwise be a transaction of its
 * own, and a transaction's round trips cost more CPU than the send; near the
 * limit a record that waits may hold up a send. The records wait in the
 * window, so this bounds nothing more than it did. Within a batch, turns are
 * written in subscription order, so recipients' ids mostly follow it.
 *
 * Each batch gives its turns' slots of the window back once it is written,
 * whatever happened: the start loop must see a halt, never hang.
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type { DeliveryRecord } from "../Domain/Delivery.js"
import type { StorageUnavailable } from "../Domain/Errors.js"
import type { UserId } from "../Domain/Ids.js"
import type { Round } from "../Domain/Round.js"
import type { DeliveryFeedShape } from "../Feed/Feed.js"
import * as Metrics from "../Observability/Metrics.js"
import type { RepoShape } from "../Repo/Repo.js"
import type { Durably } from "./Durably.js"
import { makePrefixTracker } from "./Prefix.js"
import { maxLingerMillis } from "./Settings.js"
import type { UnrecordedWindow } from "./Window.js"

/**
 * A subscriber's turn, settled: its send succeeded or failed, or it was
 * recorded before a resume (not sent again, but part of the prefix).
 * `position` is its place among this dispatch's turns.
 */
export interface Settled {
  readonly position: number
  readonly userId: UserId
  readonly succeeded: boolean
  /** The delivery to record; none for a failed send or a user recorded before. */
  readonly delivery: DeliveryRecord | undefined
}

export interface GroupCommitOptions {
  readonly repo: RepoShape
  readonly feed: DeliveryFeedShape
  readonly durably: Durably
  /** The round as the dispatcher found it: the first batch's write starts from it. */
  readonly round: Round
  readonly owner: string
  readonly productName: string
  readonly unrecorded: UnrecordedWindow
  /** Its size, and the limit it is sized for: how long a small batch may linger. */
  readonly windowSize: number
  readonly limitPerSecond: number
  readonly maxRecordBatch: number
  /** The lease was lost: another dispatcher has the round now. */
  readonly onLeaseLost: Effect.Effect<unknown>
  /** Called with the round after every committed batch. */
  readonly onProgress: (round: Round) => Effect.Effect<void>
}

export interface GroupCommit {
  /**
   * Hands a settled turn to the writer, at once (a plain call: it is made
   * from a send's callback). Every turn holds a slot of the window until its
   * batch is written, so the queue never holds more than the window.
   */
  readonly settle: (turn: Settled) => void
  /** No more turns: the writer stops once it has written every one before. */
  readonly end: Effect.Effect<unknown>
  /** The writer: records batches until `end`; fails if the database stays away past the retry window. */
  readonly run: Effect.Effect<void, StorageUnavailable>
}

export const make = (options: GroupCommitOptions): Effect.Effect<GroupCommit> =>
  // Unbounded, but never longer than the window (see `settle`): an offer never waits.
  Effect.map(Queue.unbounded<Option.Option<Settled>>(), (settled) => {
    const { durably, feed, maxRecordBatch, owner, productName, repo, unrecorded, windowSize } = options
    const prefix = makePrefixTracker<UserId>()
    // The round as this dispatcher last wrote it: each batch's write starts from it.
    let written = options.round

    const recordBatch = (batch: ReadonlyArray<Settled>) =>
      Effect.suspend(() => {
        const deliveries: Array<DeliveryRecord> = []
        for (const turn of [...batch].sort((a, b) => a.position - b.position)) {
          prefix.settle(turn.position, turn.succeeded, turn.userId)
          if (turn.delivery !== undefined) deliveries.push(turn.delivery)
        }
        const lastSentUserId = prefix.advanced()
        return Effect.gen(function*() {
          if (deliveries.length === 0 && lastSentUserId === undefined) return
          const now = new Date(yield* Clock.currentTimeMillis)
          const recorded = yield* durably(repo.recordDeliveries(written, owner, { deliveries, lastSentUserId, now, productName }))
          written = recorded.round
          yield* Metric.incrementBy(Metrics.deliveriesRecorded, recorded.deliveries.length)
          yield* feed.publish(recorded.deliveries)
          yield* options.onProgress(recorded.round)
        }).pipe(
          Effect.catchTag("LeaseLost", () => options.onLeaseLost),
          Effect.ensuring(unrecorded.release(batch.length))
        )
      })

    const lingerMillis = Math.min(maxLingerMillis, (windowSize * 1000) / options.limitPerSecond / 4)
    const run = Effect.gen(function*() {
      while (true) {
        let taken = yield* Queue.takeBetween(settled, 1, maxRecordBatch)
        if (lingerMillis >= 1 && taken.length < windowSize / 2 && Option.isSome(Chunk.unsafeLast(taken))) {
          yield* unrecorded.lingerUnlessCrowded(Duration.millis(lingerMillis))
          taken = Chunk.appendAll(taken, yield* Queue.takeUpTo(settled, maxRecordBatch - taken.length))
        }
        const batch: Array<Settled> = []
        let ended = false
        for (const item of taken) {
          if (Option.isSome(item)) batch.push(item.value)
          else ended = true
        }
        if (batch.length > 0) yield* recordBatch(batch)
        if (ended) return
      }
    }).pipe(
      // Batches follow the sends closely (one every few sends at the limit): their queries would
      // put several spans per send in a trace; the page spans and metrics time them instead.
      // Turned off once for the writer: per batch it cost ~9 KiB (measured in isolation).
      Effect.withTracerEnabled(false)
    )

    return {
      settle: (turn) => {
        settled.unsafeOffer(Option.some(turn))
      },
      end: Queue.offer(settled, Option.none()),
      run
    }
  })
