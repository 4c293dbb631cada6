/**
 * The dispatch of one round, as a `Stream` that reads like the requirement:
 *
 *   pending subscribers, in pages, in subscription order
 *     → wait for an in-flight slot and a rate-limit permit
 *     → stop if the product sold out (checked right before each send starts)
 *     → start the send (sends overlap, but start in subscription order)
 *     → collect outcomes in subscription order (contiguous successful prefix)
 *     → record deliveries in batches (group commit)
 *     → terminal status, written after every record before it.
 *
 * Durability: a send's record is written by the batch that follows it; at
 * most `maxInFlight` sends are started-but-unjoined (their in-flight slot is
 * released only once the outcome is taken in order), plus the batch being
 * written. That bounds what a SIGKILL can leave sent but unrecorded, which is
 * all a resume can repeat (SPEC §3.7).
 */
import {
  Clock,
  Context,
  Deferred,
  Duration,
  Effect,
  Fiber,
  Metric,
  Option,
  Ref,
  Queue,
  Schedule,
  Stream,
  type Tracer
} from "effect"
import { Notification, type DeliveryRecord } from "../Domain/Delivery.js"
import type { StorageUnavailable } from "../Domain/Errors.js"
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
import { RateLimiter } from "./RateLimiter/RateLimiter.js"
import { makeAttemptThenRetry } from "./SendPolicy.js"

/** How a dispatcher paces and batches its work. */
export interface DispatchSettingsShape {
  /** Sends started but not yet taken in order: bounds overlap and what a crash can repeat. */
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
    // Enough overlap for a sender answering in up to 40 ms at 500/s (20 × 2.02 ms), and few
    // enough that a SIGKILL repeats at most these plus a batch of a few records (≤ 25).
    maxInFlight: 20,
    pageSize: 500,
    maxRecordBatch: 500,
    retries: 3,
    leaseDuration: Duration.seconds(10),
    storageRetryWindow: Duration.seconds(30),
    shutdownGrace: Duration.seconds(5)
  }
}

/** A subscriber's turn: a send started, or a user who already has a record of the round. */
type Turn =
  | {
    readonly _tag: "Started"
    readonly subscriber: Subscriber
    readonly sentAt: Date
    readonly fiber: Fiber.RuntimeFiber<boolean>
    /** The trace span of the page of sends it is part of. */
    readonly page: Tracer.Span
  }
  | { readonly _tag: "AlreadyRecorded"; readonly subscriber: Subscriber }

/** How a subscriber's turn went, taken in subscription order. */
interface Outcome {
  readonly succeeded: boolean
  readonly userId: UserId
  readonly delivery: DeliveryRecord | undefined
}

/**
 * A user the round reached, in subscription order: the delivery to record
 * (none for a user recorded before a resume), and whether it extends the
 * contiguous successful prefix.
 */
interface Reached {
  readonly userId: UserId
  readonly delivery: DeliveryRecord | undefined
  readonly extendsPrefix: boolean
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
    const inFlight = yield* Effect.makeSemaphore(settings.maxInFlight)

    const attemptThenRetry = makeAttemptThenRetry(
      { notifier: instrumentedNotifier, limiter },
      { retries: settings.retries, onRetry: () => Metric.increment(Metrics.retries) }
    )
    const send = (subscriber: Subscriber, sentAt: Date): Effect.Effect<boolean> =>
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
        })
      )

    /**
     * Starts the send to one subscriber, or answers `None` if the round must
     * stop first. From the last check to the fork nothing yields, so no send
     * starts once stock ≤ 0 is visible to this process.
     */
    const startSend = (subscriber: Subscriber): Effect.Effect<Option.Option<Turn>> =>
      Effect.gen(function*() {
        // Sent before a resume: not again, but it may carry the prefix on.
        if (subscriber.alreadyRecorded) return Option.some({ _tag: "AlreadyRecorded", subscriber } as const)
        // A halt while waiting here is seen right after: the wait is at most one send's
        // latency (for a slot) plus one spacing (for a permit), and nothing is sent meanwhile.
        yield* inFlight.take(1)
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
            const fiber = yield* Effect.forkIn(Effect.withTracerEnabled(send(subscriber, sentAt), false), roundScope)
            return Option.some({ _tag: "Started", subscriber, sentAt, fiber, page } as const)
          }
        }
        yield* Ref.set(cutShort, true)
        return Option.none()
      })

    const recordBatch = (batch: ReadonlyArray<Reached>) =>
      Effect.gen(function*() {
        let lastSentUserId: UserId | undefined
        const deliveries: Array<DeliveryRecord> = []
        for (const reached of batch) {
          if (reached.extendsPrefix) lastSentUserId = reached.userId
          if (reached.delivery !== undefined) deliveries.push(reached.delivery)
        }
        const now = new Date(yield* Clock.currentTimeMillis)
        const recorded = yield* durably(
          repo.recordDeliveries(productId, restockRound, owner, {
            deliveries,
            lastSentUserId,
            now
          })
        )
        yield* Metric.incrementBy(Metrics.deliveriesRecorded, recorded.deliveries.length)
        yield* feed.publish(recorded.deliveries)
        yield* onProgress(recorded.round)
      }).pipe(
        Effect.catchTag("LeaseLost", () => haltWith(Halt.LeaseLost())),
        // Batches follow the sends closely (one every few sends at the limit): their queries would
        // put several spans per send in a trace; the page spans and metrics time them instead.
        Effect.withTracerEnabled(false)
      )

    /** A turn's outcome, once its send (if any) has settled; its in-flight slot is released then. */
    const outcomeOf = (turn: Turn): Effect.Effect<Outcome> =>
      turn._tag === "AlreadyRecorded"
        ? Effect.succeed({ succeeded: true, userId: turn.subscriber.userId, delivery: undefined })
        : Fiber.join(turn.fiber).pipe(
          Effect.tap((succeeded) => pages.settled(turn.page, succeeded)),
          Effect.map((succeeded) => ({
            succeeded,
            userId: turn.subscriber.userId,
            delivery: { userId: turn.subscriber.userId, sentAt: turn.sentAt }
          })),
          Effect.ensuring(inFlight.release(1))
        )

    // Outcomes are taken in subscription order: the prefix stays contiguous until the first failure.
    let prefixIntact = true
    const reached = (outcome: Outcome): Option.Option<Reached> => {
      if (!outcome.succeeded) prefixIntact = false
      if (!outcome.succeeded || (outcome.delivery === undefined && !prefixIntact)) return Option.none()
      return Option.some({ userId: outcome.userId, delivery: outcome.delivery, extendsPrefix: prefixIntact })
    }

    const after = round.lastSentUserId === null
      ? Option.none()
      : yield* repo.subscriptionIdOf(productId, round.lastSentUserId)

    if (yield* watch.isSoldOut) {
      // Started sold out: nothing is sent, the round ends CANCELED_BY_SOLD_OUT.
      yield* haltWith(Halt.SoldOut())
      yield* Ref.set(cutShort, true)
    } else {
      yield* repo.pendingSubscribers(productId, {
        restockRound,
        after: Option.getOrNull(after),
        pageSize: settings.pageSize
      }).pipe(
        // A page that cannot be read stops the round like any other halt: the
        // sends already started are still awaited and recorded below.
        Stream.catchAll((error) =>
          Stream.fromEffect(
            haltWith(Halt.StorageFailed({ message: error.message })).pipe(Effect.zipRight(Ref.set(cutShort, true)))
          ).pipe(Stream.drain)
        ),
        Stream.mapEffect(startSend),
        Stream.takeWhile(Option.isSome),
        // Starts run ahead of the in-order joins by at most the in-flight slots.
        Stream.buffer({ capacity: settings.maxInFlight }),
        Stream.mapEffect((turn) => Effect.map(outcomeOf(turn.value), reached)),
        groupCommit(settings.maxRecordBatch, recordBatch),
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

/** Fails the round effect with the error that kept the database away. */
export type DispatchError = StorageUnavailable

/**
 * Group commit: runs `stream` (its `Some` elements) into a bounded queue
 * while `write` takes whatever has gathered (at least one, at most
 * `maxBatch`) each time it is free. Batches stay small while writes keep up and grow when they do not.
 * (`Stream.aggregate` would do the same but polls on `Schedule.forever`,
 * spinning a core while the stream waits for sends.)
 */
const groupCommit = <A, E, R>(maxBatch: number, write: (batch: ReadonlyArray<A>) => Effect.Effect<void, E, R>) =>
<E2, R2>(stream: Stream.Stream<Option.Option<A>, E2, R2>): Effect.Effect<void, E | E2, R | R2> =>
  Effect.gen(function*() {
    // `None` marks the end of the stream, behind every element before it.
    const pending = yield* Queue.bounded<Option.Option<A>>(maxBatch)
    const produce = stream.pipe(
      Stream.runForEach((element) => Option.isSome(element) ? Queue.offer(pending, element) : Effect.void),
      Effect.ensuring(Queue.offer(pending, Option.none()))
    )
    const consume = Effect.gen(function*() {
      while (true) {
        const taken = yield* Queue.takeBetween(pending, 1, maxBatch)
        const batch: Array<A> = []
        let ended = false
        for (const item of taken) {
          if (Option.isSome(item)) batch.push(item.value)
          else ended = true
        }
        if (batch.length > 0) yield* write(batch)
        if (ended) return
      }
    })
    yield* Effect.all([produce, consume], { concurrency: 2, discard: true })
  })
