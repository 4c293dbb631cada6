/**
 * The deliveries one SSE connection of a user receives: those it missed since
 * `Last-Event-ID`, replayed from the database, then the live ones, with no gap
 * and no duplicate.
 *
 * No gap: the live subscription is in place *before* the replay queries run,
 * so a delivery committed at any moment is either read by the replay or
 * published to the subscription (deliveries are published after commit).
 * No duplicate: a delivery can be both (committed during the replay); the live
 * side skips what the replay already sent.
 *
 * Gaps are said (SPEC §3.16): when the retention has deleted deliveries with
 * ids above `Last-Event-ID` (the watermark, `prunedThrough`, is above it), the
 * replay starts with a `Gap` saying so, then goes on with what is left.
 */
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Mailbox from "effect/Mailbox"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Delivery } from "../../Domain/Delivery.js"
import type { StorageUnavailable } from "../../Domain/Errors.js"
import type { DeliveryId, UserId } from "../../Domain/Ids.js"
import { DeliveryFeed, FeedOverflow } from "../../Feed/Feed.js"
import * as Metrics from "../../Observability/Metrics.js"
import { Repo } from "../../Repo/Repo.js"
import { SseConfig } from "../Sse.js"

const replayedEvents = Metrics.sseEventsReplayed
const liveEvents = Metrics.sseEventsLive

/**
 * The ids a reconnecting client has seen: everything up to `floor`, and the
 * last `capacity` ids of the replay. A live delivery that duplicates the
 * replay was committed while the replay ran, so it sits among the newest
 * replayed ids, and there can be no more of them than the subscription buffer
 * holds (the connection is dropped past that). Keeping exactly those, rather
 * than "every id up to the highest sent", still lets through a delivery that
 * committed late with a lower id (two rounds of one user committing out of
 * order), and bounds memory whatever the length of the replay.
 */
export class SentIds {
  private floor: number
  private readonly recent = new Set<number>()
  private readonly ring: Array<number>
  private next = 0

  constructor(lastEventId: number, private readonly capacity: number) {
    this.floor = lastEventId
    this.ring = new Array<number>(capacity)
  }

  add(id: number): void {
    if (this.recent.size === this.capacity) {
      const evicted = this.ring[this.next]!
      this.recent.delete(evicted)
      if (evicted > this.floor) this.floor = evicted
    }
    this.ring[this.next] = id
    this.next = (this.next + 1) % this.capacity
    this.recent.add(id)
  }

  has(id: number): boolean {
    return id <= this.floor || this.recent.has(id)
  }
}

/** The retention deleted deliveries up to `prunedThrough` that this client had not seen. */
export interface Gap {
  readonly _tag: "Gap"
  readonly prunedThrough: number
}

export const isGap = (event: Delivery | Gap): event is Gap => "_tag" in event && event._tag === "Gap"

export interface DeliveryStreamOptions {
  /** Replay deliveries with a greater id first (`0`: all of them); `null`: live only. */
  readonly lastEventId: number | null
  /** Runs when the client fell more than the buffer behind; the stream then ends. */
  readonly onOverflow: Effect.Effect<void>
}

/**
 * Subscribes (in the current scope) and returns the connection's deliveries.
 * Fails with `StorageUnavailable` only if the subscription cannot be made, so
 * the caller can still answer with an error status. The stream ends when the
 * client falls behind (after `onOverflow`) or storage fails mid-stream; what
 * the connection holds is released then, or when the scope closes.
 */
export const userDeliveries = (
  userId: UserId,
  options: DeliveryStreamOptions
): Effect.Effect<Stream.Stream<Delivery | Gap>, StorageUnavailable, DeliveryFeed | Repo | Scope.Scope> =>
  Effect.gen(function*() {
    const config = yield* SseConfig
    const feed = yield* DeliveryFeed
    const repo = yield* Repo
    const connectionScope = yield* Effect.scope
    // Released as soon as the stream ends, even while a stalled client keeps
    // the request itself open.
    const subscriptionScope = yield* Scope.fork(connectionScope, ExecutionStrategy.sequential)
    const live = yield* feed.subscribe(userId, { bufferSize: config.bufferSize }).pipe(
      Scope.extend(subscriptionScope),
      Effect.onError(() => Scope.close(subscriptionScope, Exit.void))
    )
    // Events not yet written to the client: the bounded buffer of the connection.
    const outbox = yield* Mailbox.make<Delivery | Gap>(config.bufferSize)
    const sent = new SentIds(options.lastEventId ?? 0, config.bufferSize)
    // The whole replay enters the outbox before any live delivery, so the
    // first `replayedUntaken` events taken from it are the replayed ones.
    let replayedUntaken = 0

    const replay = (afterId: number, first: boolean): Effect.Effect<void, StorageUnavailable> =>
      Effect.gen(function*() {
        const page = yield* repo.deliveriesOfUser(userId, {
          afterId: afterId as DeliveryId,
          limit: config.replayPageSize
        })
        if (first) {
          // Read after the first page, so a batch pruned before that page was read is said too.
          const prunedThrough = yield* repo.prunedThrough
          if (afterId < prunedThrough) yield* outbox.offer({ _tag: "Gap", prunedThrough })
        }
        // Waits while the client catches up: the replay is read at its pace.
        replayedUntaken += page.length
        yield* outbox.offerAll(page)
        for (const delivery of page) sent.add(delivery.id)
        if (page.length === config.replayPageSize) yield* replay(page[page.length - 1]!.id, false)
      })

    const forwardLive = Stream.runForEach(live, (delivery) =>
      sent.has(delivery.id) || outbox.unsafeOffer(delivery)
        ? Effect.void
        : Effect.fail(new FeedOverflow({ bufferSize: config.bufferSize })))

    yield* (options.lastEventId === null ? forwardLive : Effect.zipRight(replay(options.lastEventId, true), forwardLive))
      .pipe(
        Effect.catchTags({
          FeedOverflow: () =>
            Effect.zipRight(
              Effect.logInfo("SSE client fell behind its buffer: dropped").pipe(
                Effect.annotateLogs({ userId, bufferSize: config.bufferSize }),
                Effect.zipRight(Metric.increment(Metrics.sseSlowClientsDropped))
              ),
              options.onOverflow
            ),
          StorageUnavailable: (error) =>
            Effect.logWarning("SSE stream ended: storage unavailable").pipe(
              Effect.annotateLogs({ userId, error: error.message })
            )
        }),
        Effect.ensuring(Effect.zipRight(Scope.close(subscriptionScope, Exit.void), outbox.end)),
        Effect.forkIn(connectionScope)
      )

    // One event per pull: the writer takes the next event only once the
    // socket took the last, so what waits for a slow client stays in the
    // outbox, where it is counted, rather than in a chunk taken all at once.
    const taken = (event: Delivery | Gap) => Effect.suspend(() => {
      if (isGap(event)) return Effect.void
      if (replayedUntaken === 0) return Metric.increment(liveEvents)
      replayedUntaken -= 1
      return Metric.increment(replayedEvents)
    })
    return Stream.repeatEffectOption(Effect.mapError(Effect.tap(outbox.take, taken), () => Option.none()))
  })
