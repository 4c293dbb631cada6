/**
 * The dispatch of one round, as a `Stream` that reads like the requirement:
 *
 *   pending subscribers, in pages, in subscription order
 *     → wait for a slot of the unrecorded window and a rate-limit permit
 *     → stop if the product sold out (checked right before each send starts)
 *     → start the send (sends overlap, but start in subscription order)
 *     → as each send settles, its outcome goes to the group commit
 *     → record deliveries in batches; the contiguous successful prefix
 *       (`last_sent_user_id`) advances over what has been recorded
 *     → terminal status, written after every record before it.
 *
 * Durability: a send holds its slot of the window from before it starts
 * until its record is committed, so at most `unrecordedWindow` sends are
 * ever sent-or-in-flight but not yet recorded: what a SIGKILL can make a
 * resume repeat (SPEC §3.7: 25 at the default limit). Outcomes are recorded
 * as they come, not in subscription order, so one slow send holds up only
 * its own slot, never the sends after it.
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Queue from "effect/Queue"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import { Notification, type DeliveryRecord } from "../Domain/Delivery.js"
import { describeCause } from "../Domain/Errors.js"
import type { UserId } from "../Domain/Ids.js"
import type { Product } from "../Domain/Product.js"
import type { Round } from "../Domain/Round.js"
import type { Subscriber } from "../Domain/Subscription.js"
import { DeliveryFeed } from "../Notifier/Feed.js"
import { Notifier } from "../Notifier/Notifier.js"
import { Repo } from "../Repo/Repo.js"
import { StockCache } from "../StockCache/StockCache.js"
import { Halt, terminalOutcome } from "./Halt.js"
import * as Metrics from "../Metrics.js"
import * as PageSpans from "../Observability/PageSpans.js"
import { makePrefixTracker } from "./Prefix.js"
import { RateLimiter } from "./RateLimiter/RateLimiter.js"
import { makeAttemptThenRetry } from "./SendPolicy.js"
import { makeUnrecordedWindow } from "./Window.js"

/** How a dispatcher paces and batches its work. */
export interface DispatchSettingsShape {
  /**
   * The least sends that may be started but not yet recorded: bounds overlap
   * and what a crash can repeat. At high limits the window grows to 50 ms of
   * sends (see `unrecordedWindow`).
   */
  readonly maxInFlight: number
  /** Subscribers read per page. */
  readonly pageSize: number
  /** The most delivery records written in one transaction. */
  readonly maxRecordBatch: number
  /** Retries of a transient send failure (`NOTIFIER_RETRIES`). */
  readonly retries: number
  /** How long a dispatcher's claim on a round holds without a heartbeat. */
  readonly leaseDuration: Duration.Duration
  /** How long to keep retrying a record or status write while the database is away. */
  readonly storageRetryWindow: Duration.Duration
  /** On shutdown, how long halted rounds may take to await their in-flight sends. */
  readonly shutdownGrace: Duration.Duration
}

export class DispatchSettings extends Context.Tag("restock/DispatchSettings")<
  DispatchSettings,
  DispatchSettingsShape
>() {
  static readonly defaults: DispatchSettingsShape = {
    // With the window's growth, 25 at the default 500/s: a sender answering in up to ~40 ms
    // plus a record write, and a SIGKILL repeats at most 25 (SPEC §3.7).
    maxInFlight: 20,
    pageSize: 500,
    maxRecordBatch: 500,
    retries: 3,
    leaseDuration: Duration.seconds(10),
    storageRetryWindow: Duration.seconds(30),
    shutdownGrace: Duration.seconds(5)
  }
}

/**
 * How long a window of unrecorded sends lasts at the limit: sends started
 * but not yet recorded are at most this many milliseconds of the limit's
 * sends, or `maxInFlight` if more, or `maxRecordBatch` if fewer.
 */
export const unrecordedWindowMillis = 50

/** The most sends started but not yet recorded at `limitPerSecond`: 25 at 500/s with the defaults. */
export const unrecordedWindow = (settings: DispatchSettingsShape, limitPerSecond: number): number =>
  Math.max(
    settings.maxInFlight,
    Math.min(settings.maxRecordBatch, Math.floor((limitPerSecond * unrecordedWindowMillis) / 1000))
  )

/** The longest a small batch of records waits for more (see the group commit in `dispatchRound`). */
export const maxLingerMillis = 25

/**
 * A subscriber's turn, settled: its send succeeded or failed, or it was
 * recorded before a resume (not sent again, but part of the prefix).
 * `position` is its place among this dispatch's turns.
 */
interface Settled {
  readonly position: number
  readonly userId: UserId
  readonly succeeded: boolean
  /** The delivery to record; none for a failed send or a user recorded before. */
  readonly delivery: DeliveryRecord | undefined
}

export interface DispatchInput {
  readonly round: Round
  readonly product: Product
  /** The lease owner: this dispatcher's id; every write is fenced by it. */
  readonly owner: string
  /** Completed by whoever stops the round early: sold out, a failed send, shutdown. */
  readonly halt: Deferred.Deferred<Halt>
  /** Called with the round after every committed change (progress streams). */
  readonly onProgress: (round: Round) => Effect.Effect<void>
}

/**
 * Sends one round to its pending subscribers and returns its terminal state.
 * Fails with `StorageUnavailable` only if the database stayed away longer than
 * `storageRetryWindow`: the round is then left `IN_PROGRESS` with a lease that
 * lapses, so an operator can resume it.
 */
export const dispatchRound = (input: DispatchInput) =>
  Effect.gen(function*() {
    const repo = yield* Repo
    const stockCache = yield* StockCache
    const limiter = yield* RateLimiter
    const notifier = yield* Notifier
    // Counted where requests leave: every attempt, retries included.
    const instrumentedNotifier = Notifier.of({
      send: (notification) =>
        Metrics.timed(Metrics.sendLatency, notifier.send(notification)).pipe(
          Effect.tapBoth({
            onFailure: (failure) =>
              Metric.increment(failure.reason === "Permanent" ? Metrics.sendsPermanentFailure : Metrics.sendsTransientFailure),
            onSuccess: () => Metric.increment(Metrics.sendsOk)
          })
        )
    })
    const feed = yield* DeliveryFeed
    const settings = yield* DispatchSettings
    const { halt, onProgress, owner, product, round } = input
    const { productId, restockRound } = round
    const haltWith = (reason: Halt) => Deferred.succeed(halt, reason)
    const roundScope = yield* Effect.scope

    /** Retries a write while the database is away; stops new sends meanwhile. */
    const durably = <A, E extends { readonly _tag: string; readonly message: string }>(write: Effect.Effect<A, E>) =>
      write.pipe(
        Effect.tapError((error) =>
          error._tag === "StorageUnavailable" ? haltWith(Halt.StorageFailed({ message: error.message })) : Effect.void
        ),
        Effect.retry({
          while: (error) => error._tag === "StorageUnavailable",
          schedule: Schedule.exponential("100 millis").pipe(
            Schedule.union(Schedule.spaced("2 seconds")),
            Schedule.upTo(settings.storageRetryWindow)
          )
        })
      )

    // Sold out: the watch completes `halt` as soon as stock ≤ 0 is visible.
    const watch = yield* stockCache.watch(productId)
    yield* watch.soldOut.pipe(Effect.zipRight(haltWith(Halt.SoldOut())), Effect.forkScoped)

    // Heartbeat: keeps the lease while this process lives; a lost lease stops the round.
    yield* Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      yield* repo.renewLease(productId, restockRound, {
        owner,
        expiresAt: new Date(now + Duration.toMillis(settings.leaseDuration))
      })
    }).pipe(
      Effect.catchTags({
        LeaseLost: () => haltWith(Halt.LeaseLost()),
        // The next beat tries again; writes are fenced if the lease lapses meanwhile.
        StorageUnavailable: () => Effect.void
      }),
      Effect.repeat(Schedule.spaced(Duration.times(settings.leaseDuration, 1 / 3))),
      Effect.delay(Duration.times(settings.leaseDuration, 1 / 3)),
      Effect.forkScoped
    )

    const cutShort = yield* Ref.make(false)
    const pages = yield* PageSpans.make(settings.pageSize)
    const window = unrecordedWindow(settings, limiter.limitPerSecond)
    // A slot is taken before a send starts and given back once its record is committed.
    const unrecorded = yield* makeUnrecordedWindow(window)
    // Settled turns on their way to the group commit; `None` ends it, behind all of them.
    const settled = yield* Queue.bounded<Option.Option<Settled>>(settings.maxRecordBatch)
    const settle = (turn: Settled) => Queue.offer(settled, Option.some(turn))
    const prefix = makePrefixTracker<UserId>()
    let positions = 0
    // The round as this dispatcher last wrote it: each batch's write starts from it.
    let written = round

    const attemptThenRetry = makeAttemptThenRetry(
      { notifier: instrumentedNotifier, limiter },
      { retries: settings.retries, onRetry: () => Metric.increment(Metrics.retries) }
    )

    /**
     * The send, forked: its outcome goes to the group commit, which gives its slot back.
     * How long the fork waited to run is measured: a stall here bunches requests on their
     * way to the sender as much as one there would.
     */
    const send = (subscriber: Subscriber, position: number, sentAt: Date, page: Tracer.Span): Effect.Effect<void> =>
      Effect.zipRight(
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          Metric.update(Metrics.sendStartLag, Math.max(0, now - sentAt.getTime()) / 1000)),
        attemptThenRetry(
          // Its fields come from decoded rows: validating them again per send costs more than the rest.
          new Notification(
            { userId: subscriber.userId, productId, productName: product.name, restockRound, sentAt },
            { disableValidation: true }
          )
        ).pipe(
          Effect.matchEffect({
            onFailure: (error) => Effect.as(haltWith(Halt.SendFailed({ message: error.message })), false),
            onSuccess: () => Effect.succeed(true)
          }),
          // A notifier that throws is a failed send too: its turn must still settle, or its slot
          // would never come back and the round would wait for it forever.
          Effect.catchAllDefect((defect) =>
            Effect.as(haltWith(Halt.SendFailed({ message: `the notifier failed unexpectedly: ${describeCause(defect)}` })), false)
          ),
          Effect.tap((succeeded) => pages.settled(page, succeeded)),
          Effect.flatMap((succeeded) =>
            settle({
              position,
              userId: subscriber.userId,
              succeeded,
              delivery: succeeded ? { userId: subscriber.userId, sentAt } : undefined
            })
          )
        )
      )

    /**
     * Takes one subscriber's turn: starts its send, or passes on a user
     * recorded before a resume. Answers `false` if the round must stop
     * first. From the last check to the fork nothing yields, so no send
     * starts once stock ≤ 0 is visible to this process.
     */
    const takeTurn = (subscriber: Subscriber): Effect.Effect<boolean> =>
      Effect.gen(function*() {
        const position = positions++
        if (subscriber.alreadyRecorded) {
          yield* settle({ position, userId: subscriber.userId, succeeded: true, delivery: undefined })
          return true
        }
        // A halt while waiting here is seen right after: the wait is at most one record
        // write (for a slot) plus one spacing (for a permit), and nothing is sent meanwhile.
        yield* unrecorded.take
        const permitted = yield* Metrics.timed(Metrics.rateLimitWait, limiter.acquire).pipe(
          Effect.as(true),
          Effect.catchAll((error) => haltWith(Halt.StorageFailed({ message: error.message })).pipe(Effect.as(false)))
        )
        if (permitted && !(yield* Deferred.isDone(halt))) {
          if (yield* watch.isSoldOut) {
            yield* haltWith(Halt.SoldOut())
          } else {
            const sentAt = new Date(yield* Clock.currentTimeMillis)
            const page = yield* pages.started
            // Traced by its page, never on its own (nor the notifier's requests).
            yield* Effect.forkIn(Effect.withTracerEnabled(send(subscriber, position, sentAt, page), false), roundScope)
            return true
          }
        }
        yield* unrecorded.release(1)
        yield* Ref.set(cutShort, true)
        return false
      })

    const recordBatch = (batch: ReadonlyArray<Settled>) =>
      Effect.gen(function*() {
        const deliveries: Array<DeliveryRecord> = []
        let sends = 0
        // Subscription order within a batch, so recipients' ids mostly follow it.
        for (const turn of [...batch].sort((a, b) => a.position - b.position)) {
          prefix.settle(turn.position, turn.succeeded, turn.userId)
          if (turn.delivery !== undefined) deliveries.push(turn.delivery)
          if (turn.delivery !== undefined || !turn.succeeded) sends += 1
        }
        const lastSentUserId = prefix.advanced()
        yield* Effect.gen(function*() {
          if (deliveries.length === 0 && lastSentUserId === undefined) return
          const now = new Date(yield* Clock.currentTimeMillis)
          const recorded = yield* durably(
            repo.recordDeliveries(written, owner, { deliveries, lastSentUserId, now, productName: product.name })
          )
          written = recorded.round
          yield* Metric.incrementBy(Metrics.deliveriesRecorded, recorded.deliveries.length)
          yield* feed.publish(recorded.deliveries)
          yield* onProgress(recorded.round)
        }).pipe(
          Effect.catchTag("LeaseLost", () => haltWith(Halt.LeaseLost())),
          // Their slots are given back whatever happened: the start loop must see a halt, not hang.
          Effect.ensuring(sends > 0 ? unrecorded.release(sends) : Effect.void)
        )
      }).pipe(
        // Batches follow the sends closely (one every few sends at the limit): their queries would
        // put several spans per send in a trace; the page spans and metrics time them instead.
        Effect.withTracerEnabled(false)
      )

    /**
     * Group commit: whatever has settled (at least one, at most a batch) each
     * time the writer is free. A batch much smaller than the window waits a
     * little for more (an eighth of the window's time, at most 25 ms) unless
     * the window is crowded: at low rates every send would otherwise be a
     * transaction of its own, and a transaction's round trips cost more CPU
     * than the send; near the limit a record that waits may hold up a send.
     * The records wait in the window, so this bounds nothing more than it did.
     */
    const lingerMillis = Math.min(maxLingerMillis, (window * 1000) / limiter.limitPerSecond / 8)
    const recordAsTheySettle = Effect.gen(function*() {
      while (true) {
        let taken = yield* Queue.takeBetween(settled, 1, settings.maxRecordBatch)
        if (lingerMillis >= 1 && taken.length < window / 2 && Option.isSome(Chunk.unsafeLast(taken))) {
          yield* unrecorded.lingerUnlessCrowded(Duration.millis(lingerMillis))
          taken = Chunk.appendAll(taken, yield* Queue.takeUpTo(settled, settings.maxRecordBatch - taken.length))
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
    })

    const after = round.lastSentUserId === null
      ? Option.none()
      : yield* repo.subscriptionIdOf(productId, round.lastSentUserId)

    const subscribers = repo.pendingSubscribers(productId, {
      restockRound,
      after: Option.getOrNull(after),
      pageSize: settings.pageSize
    }).pipe(
      // A page that cannot be read stops the round like any other halt: the
      // sends already started are still awaited and recorded.
      Stream.catchAll((error) =>
        Stream.fromEffect(
          haltWith(Halt.StorageFailed({ message: error.message })).pipe(Effect.zipRight(Ref.set(cutShort, true)))
        ).pipe(Stream.drain)
      ),
      // The next page is read while this one is sent: a page read at the limit would
      // otherwise stall the starts for its duration (two pages in memory at most).
      Stream.bufferChunks({ capacity: 1 })
    )

    // Page by page, a turn per subscriber, until the pages end or a turn says stop. (A plain
    // loop: `Stream.runForEachWhile` keeps a continuation per element until the stream ends,
    // which grew the heap by ~300 bytes per subscriber over a round.)
    const startInOrder = Effect.gen(function*() {
      const pull = yield* Stream.toPull(subscribers)
      pages: while (true) {
        const page = yield* Effect.option(pull)
        if (Option.isNone(page)) break
        for (const subscriber of page.value) if (!(yield* takeTurn(subscriber))) break pages
      }
      // Every slot back means every send started has been recorded; then the writer may stop.
      // (Not on interruption: then the writer has failed, and the queue may be full.)
      yield* unrecorded.drain
      yield* Queue.offer(settled, Option.none())
    })

    if (yield* watch.isSoldOut) {
      // Started sold out: nothing is sent, the round ends CANCELED_BY_SOLD_OUT.
      yield* haltWith(Halt.SoldOut())
      yield* Ref.set(cutShort, true)
    } else {
      yield* Effect.all([startInOrder, recordAsTheySettle], { concurrency: 2, discard: true }).pipe(
        Effect.ensuring(pages.close)
      )
    }

    const haltReason = yield* Deferred.poll(halt).pipe(
      Effect.flatMap(Option.match({ onNone: () => Effect.succeed(undefined), onSome: (reason) => reason }))
    )
    const outcome = terminalOutcome(haltReason, yield* Ref.get(cutShort))
    if (outcome === undefined) {
      // Taken over by another dispatcher: report the round as the database has it.
      return yield* repo.getRound(productId, restockRound).pipe(Effect.map(Option.getOrElse(() => round)))
    }
    const now = new Date(yield* Clock.currentTimeMillis)
    const finished = yield* durably(repo.finishRound(productId, restockRound, owner, { ...outcome, now })).pipe(
      Effect.catchTag("LeaseLost", () =>
        repo.getRound(productId, restockRound).pipe(Effect.map(Option.getOrElse(() => round))))
    )
    yield* onProgress(finished)
    return finished
  }).pipe(Effect.scoped)
