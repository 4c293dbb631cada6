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
 * The stream is written in place: the feed's listener hands each live
 * delivery to the connection's sink as it is published, and the replay is
 * the only fiber a connection has (it ends with the replay). The sink bounds
 * what the client may fall behind (`SseChannel`).
 *
 * Gaps are said (SPEC §3.16): when the retention has deleted deliveries with
 * ids above `Last-Event-ID` (the watermark, `prunedThrough`, is above it), the
 * replay starts with a `Gap` saying so, then goes on with what is left.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Delivery } from "../../Domain/Delivery.js"
import type { StorageUnavailable } from "../../Domain/Errors.js"
import type { DeliveryId, UserId } from "../../Domain/Ids.js"
import { DeliveryFeed, type FeedListener } from "../../Feed/Feed.js"
import * as Metrics from "../../Observability/Metrics.js"
import { Repo } from "../../Repo/Repo.js"
import { SseConfig } from "../Sse.js"

/**
 * The ids a reconnecting client has seen: everything up to `floor`, and the
 * last `capacity` ids of the replay. A live delivery that duplicates the
 * replay was committed while the replay ran, so it sits among the newest
 * replayed ids, and there can be no more of them than the stream holds while
 * its replay runs (the connection is dropped past that). Keeping exactly
 * those, rather than "every id up to the highest sent", still lets through a
 * delivery that committed late with a lower id (two rounds of one user
 * committing out of order), and bounds memory whatever the length of the
 * replay. The ring grows as ids come: a short replay holds a short ring.
 */
export class SentIds {
  private floor: number
  private readonly recent = new Set<number>()
  private readonly ring: Array<number> = []
  private next = 0

  constructor(lastEventId: number, private readonly capacity: number) {
    this.floor = lastEventId
  }

  add(id: number): void {
    if (this.ring.length < this.capacity) {
      this.ring.push(id)
      this.recent.add(id)
      return
    }
    const evicted = this.ring[this.next]!
    this.recent.delete(evicted)
    if (evicted > this.floor) this.floor = evicted
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

/** Where a connection's events go: its client, behind a bound. */
export interface DeliverySink {
  /** Queues an event for the client; `false` if the client is gone or has just been dropped for falling behind. */
  readonly write: (event: Delivery | Gap) => boolean
  /** Waits while the client is behind: the replay is read at its pace. */
  readonly ready: Effect.Effect<void>
  /** Ends the stream: the client reconnects and replays what it may have missed. */
  readonly end: () => void
  /** Drops the client, which fell behind: live deliveries came faster than its replay went. */
  readonly overflow: () => void
}

export interface DeliveryStreamOptions {
  /** Replay deliveries with a greater id first (`0`: all of them); `null`: live only. */
  readonly lastEventId: number | null
}

/**
 * Subscribes (in the current scope) and starts writing the connection's
 * deliveries to `sink`. Fails with `StorageUnavailable` only if the
 * subscription cannot be made, so the caller can still answer with an error
 * status. Storage failing mid-replay ends the stream (the client reconnects);
 * the subscription and the replay end when the scope closes.
 */
export const userDeliveries = (
  userId: UserId,
  options: DeliveryStreamOptions,
  sink: DeliverySink
): Effect.Effect<void, StorageUnavailable, DeliveryFeed | Repo | Scope.Scope> =>
  Effect.gen(function*() {
    const feed = yield* DeliveryFeed
    const { lastEventId } = options
    if (lastEventId === null) {
      // Live only: each delivery goes straight to the client.
      return yield* feed.listen(userId, {
        deliver: (delivery) => {
          if (sink.write(delivery)) Metrics.sseEventsLive.unsafeUpdate(1, [])
        },
        ended: sink.end
      })
    }

    const config = yield* SseConfig
    const repo = yield* Repo
    const sent = new SentIds(lastEventId, config.bufferSize)
    const writeLive = (delivery: Delivery) => {
      if (!sent.has(delivery.id) && sink.write(delivery)) Metrics.sseEventsLive.unsafeUpdate(1, [])
    }
    // The live deliveries published while the replay runs, written after it; `undefined` once it is done.
    let held: Array<Delivery> | undefined = []
    let dropped = false
    const listener: FeedListener = {
      deliver: (delivery) => {
        if (dropped) return
        if (held === undefined) return writeLive(delivery)
        if (held.length < config.bufferSize) return void held.push(delivery)
        dropped = true
        held = []
        sink.overflow()
      },
      ended: sink.end
    }
    // In place before the replay's first query: what commits meanwhile is read or heard.
    yield* feed.listen(userId, listener)

    const replay = (afterId: number, first: boolean): Effect.Effect<void, StorageUnavailable> =>
      Effect.gen(function*() {
        const page = yield* repo.deliveriesOfUser(userId, {
          afterId: afterId as DeliveryId,
          limit: config.replayPageSize
        })
        if (first) {
          // Read after the first page, so a batch pruned before that page was read is said too.
          const prunedThrough = yield* repo.prunedThrough
          if (afterId < prunedThrough) sink.write({ _tag: "Gap", prunedThrough })
        }
        for (const delivery of page) {
          if (!sink.write(delivery)) return
          sent.add(delivery.id)
          Metrics.sseEventsReplayed.unsafeUpdate(1, [])
        }
        yield* sink.ready
        if (page.length === config.replayPageSize) yield* replay(page[page.length - 1]!.id, false)
      })

    yield* replay(lastEventId, true).pipe(
      Effect.tap(() =>
        Effect.sync(() => {
          const waiting = held ?? []
          held = undefined
          for (const delivery of waiting) writeLive(delivery)
        })
      ),
      Effect.catchTag("StorageUnavailable", (error) =>
        Effect.zipRight(
          Effect.logWarning("SSE stream ended: storage unavailable").pipe(
            Effect.annotateLogs({ userId, error: error.message })
          ),
          Effect.sync(sink.end)
        )),
      Effect.forkScoped
    )
  })
