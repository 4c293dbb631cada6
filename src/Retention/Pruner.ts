/**
 * The retention (SPEC §3.15): deletes delivery records older than
 * `HISTORY_RETENTION`, oldest first, in batches of at most 1,000, keeping the
 * records of every round that can still be resumed.
 *
 * On time: the deadline is the shorter of a tenth of the retention and one
 * minute after a record expires. A pass starts a quarter of the deadline
 * after the last one ended, so a record goes within a quarter of the deadline
 * plus one pass; a pass is short while the pruner keeps up with what expires
 * (the `history` bench measures how fast it deletes). A backlog (a retention
 * set on a long history) takes as long as its size at that rate.
 *
 * Several instances: they share one lease row (`history_retention`), claimed
 * at each pass and extended by each batch, and every batch is fenced by it in
 * its own transaction; one instance prunes, the others only watch the lease,
 * so they neither fight over rows nor double the work. A holder that dies
 * stops extending it and another instance takes over once it lapses.
 *
 * Beside a running round: a batch is one short transaction on the oldest
 * rows (a running round's rows are the newest, and its round row is never
 * touched: it is kept). While a round is sending anywhere (each batch says
 * so: `PrunedBatch.roundSending`), the pruner takes only a small share of the
 * time — smaller batches, each followed by a pause several times as long as
 * it took — so the round keeps its rate and efficiency (on two shared cores,
 * full-speed batches of 1,000 cost a round of 5,000 at 500/s a tenth of its
 * efficiency: `bench/README.md`, history). It still prunes meanwhile, so a
 * shop whose rounds never stop still keeps its history bounded.
 *
 * Crash-safe: a batch's delete, its rounds' `records_pruned` and the
 * watermark commit together (`Repo.pruneHistory`); a pruner killed mid-batch
 * rolls the whole batch back and the next pass does it again.
 *
 * Every wait goes through Effect's `Clock`.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { randomUUID } from "node:crypto"
import * as Metrics from "../Observability/Metrics.js"
import { Repo } from "../Repo/Repo.js"
import type { PrunedBatch, PruneCursor } from "../Repo/Repo.js"
import type { StorageUnavailable } from "../Domain/Errors.js"
import { maxPruneBatch } from "../Repo/SqlRetention.js"

export interface PrunerSettings {
  /** Records whose `sent_at` is older than this are deleted. */
  readonly retention: Duration.Duration
  /** Records read and deleted per batch (at most 1,000). */
  readonly batchSize: number
  /** The pause after a batch that deleted something, while no round is sending. */
  readonly pauseBetweenBatches: Duration.Duration
  /** While a round is sending: smaller batches, and at most this share of the time spent in them. */
  readonly whileSending: { readonly batchSize: number; readonly share: number }
  /** How often a pass starts (after the last one ended). */
  readonly interval: Duration.Duration
  /** How long the pruning lease holds without being extended. */
  readonly leaseDuration: Duration.Duration
}

/** The settings for a retention: on time as SPEC §3.15 says, with room for a pass to take a while. */
export const settingsFor = (retention: Duration.Duration): PrunerSettings => {
  // Records go no later than this after they expire.
  const deadline = Duration.min(Duration.unsafeDivide(retention, 10), Duration.minutes(1))
  const interval = Duration.unsafeDivide(deadline, 4)
  return {
    retention,
    batchSize: maxPruneBatch,
    pauseBetweenBatches: Duration.millis(50),
    // A batch of 200 takes ~50 ms here beside a round; then ~450 ms of pause: ~400 records/s,
    // about what a round at 500/s writes, and a tenth of a core.
    whileSending: { batchSize: 200, share: 0.1 },
    interval,
    // Several intervals, so one slow pass does not lose the lease; a dead holder's lease
    // lapses within this and another instance takes over.
    leaseDuration: Duration.max(Duration.times(interval, 4), Duration.seconds(5))
  }
}

export interface PassResult {
  /** Whether this pruner held the lease for the pass. */
  readonly pruned: boolean
  readonly deleted: number
  readonly batches: number
  readonly prunedThrough: number
}

export interface PrunerShape {
  /** This pruner's lease owner id. */
  readonly owner: string
  /**
   * One pass: claims the lease (or renews it), then deletes every expired
   * record it may, batch after batch, pausing between batches. Ends early,
   * changing nothing more, if another instance holds or takes the lease.
   */
  readonly pass: Effect.Effect<PassResult, StorageUnavailable>
  /** Gives the lease up, so that another instance prunes at once. */
  readonly release: Effect.Effect<void>
}

export class Pruner extends Context.Tag("restock/Retention/Pruner")<Pruner, PrunerShape>() {}

/**
 * The pause after a batch that deleted something and took `elapsedMillis`:
 * while a round is sending, long enough that batches take at most
 * `whileSending.share` of the time; never shorter than `pauseBetweenBatches`.
 */
export const pauseAfterBatch = (settings: PrunerSettings, elapsedMillis: number, roundSending: boolean): Duration.Duration => {
  if (!roundSending) return settings.pauseBetweenBatches
  const share = Math.min(Math.max(settings.whileSending.share, 0.01), 1)
  return Duration.max(settings.pauseBetweenBatches, Duration.millis(elapsedMillis * (1 - share) / share))
}

const currentTime = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis))
const plus = (date: Date, duration: Duration.Duration) => new Date(date.getTime() + Duration.toMillis(duration))

/** A pruner over the `Repo` in context (it prunes only when `pass` runs). */
export const make = (settings: PrunerSettings): Effect.Effect<PrunerShape, never, Repo> =>
  Effect.gen(function*() {
    const repo = yield* Repo
    const owner = `pruner-${randomUUID()}`
    /** Whether a round was sending at the last batch, on any instance. */
    let roundSending = false

    const updateOldestAge = Effect.gen(function*() {
      const oldest = yield* repo.oldestRecordSentAt
      const now = yield* Clock.currentTimeMillis
      yield* Metric.set(
        Metrics.historyOldestRecordAge,
        Option.match(oldest, { onNone: () => 0, onSome: (sentAt) => Math.max(0, (now - sentAt.getTime()) / 1000) })
      )
    })

    const prune = (startedAt: Date) =>
      Effect.gen(function*() {
        const cutoff = new Date(startedAt.getTime() - Duration.toMillis(settings.retention))
        // The Repo caps a batch at 1,000: a larger setting would read as "the pass is done" after one batch.
        const batchSizeFor = (sending: boolean) =>
          Math.min(sending ? settings.whileSending.batchSize : settings.batchSize, maxPruneBatch)
        let after: PruneCursor | null = null
        let deleted = 0
        let batches = 0
        let prunedThrough = 0
        while (true) {
          // The first batch of a pass goes by what the last batch saw.
          const batchSize = batchSizeFor(roundSending)
          const now = yield* currentTime
          const batch: PrunedBatch = yield* repo.pruneHistory(owner, {
            cutoff,
            after,
            limit: batchSize,
            leaseExpiresAt: plus(now, settings.leaseDuration)
          })
          const elapsed = (yield* Clock.currentTimeMillis) - now.getTime()
          roundSending = batch.roundSending
          batches += 1
          deleted += batch.deleted
          prunedThrough = batch.prunedThrough
          if (batch.deleted > 0) yield* Metric.incrementBy(Metrics.historyRowsPruned, batch.deleted)
          // Fewer than a batch: every record expired at the cutoff has been looked at.
          if (batch.examined < batchSize) break
          // Records kept (a resumable round's) stay behind the cursor for the rest of the pass.
          after = batch.last
          if (batch.deleted > 0) yield* Effect.sleep(pauseAfterBatch(settings, elapsed, roundSending))
        }
        return { pruned: true, deleted, batches, prunedThrough } satisfies PassResult
      })

    const pass: PrunerShape["pass"] = Effect.gen(function*() {
      const now = yield* currentTime
      const holds = yield* repo.claimPruning({ owner, expiresAt: plus(now, settings.leaseDuration) }, now)
      const result = holds
        ? yield* prune(now).pipe(
          Effect.catchTag("PruningLeaseLost", () =>
            Effect.succeed<PassResult>({ pruned: false, deleted: 0, batches: 0, prunedThrough: 0 }))
        )
        : { pruned: false, deleted: 0, batches: 0, prunedThrough: 0 }
      yield* updateOldestAge
      return result
    }).pipe(Effect.withSpan("restock.retention.pass"))

    const release = repo.releasePruning(owner).pipe(Effect.ignore)

    return { owner, pass, release }
  })

/**
 * The retention running in the background of this instance: a pass every
 * `settings.interval`, a database outage logged and tried again at the next
 * one. Closing the layer interrupts a pass (its batch rolls back) and gives
 * the lease up.
 */
export const layer = (settings: PrunerSettings): Layer.Layer<Pruner, never, Repo> =>
  Layer.scoped(
    Pruner,
    Effect.gen(function*() {
      const pruner = yield* make(settings)
      // Added before the loop is forked: finalizers run in reverse, so the loop stops first.
      yield* Effect.addFinalizer(() => pruner.release)
      yield* pruner.pass.pipe(
        Effect.catchAll((error) => Effect.logWarning("history pruning failed; trying again at the next pass", error.message)),
        Effect.repeat(Schedule.spaced(settings.interval)),
        Effect.annotateLogs({ component: "retention" }),
        Effect.forkScoped
      )
      yield* Effect.logInfo(
        `history retention: records older than ${Duration.format(settings.retention)} are deleted, a pass every ${
          Duration.format(settings.interval)
        }`
      )
      return pruner
    })
  )
