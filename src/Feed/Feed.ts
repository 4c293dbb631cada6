/**
 * The `DeliveryFeed` port: recorded deliveries, fanned out to the SSE
 * listeners of every process (Redis pub/sub) or of this one (in memory).
 *
 * Deliveries are published after their records are committed, so the event id
 * a listener sees is the `product_user_notification_history.id` it can later
 * replay from with `Last-Event-ID`.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { Delivery } from "../Domain/Delivery.js"
import type { StorageUnavailable } from "../Domain/Errors.js"
import type { UserId } from "../Domain/Ids.js"

/**
 * A live listener as plain callbacks, called synchronously by the publisher:
 * what one open SSE stream costs in the feed is this object, no queue and no
 * fiber of its own.
 */
export interface FeedListener {
  /** Each live delivery of the listener's user, in publish order. Must not block. */
  readonly deliver: (delivery: Delivery) => void
  /** The feed ended this listener and may have lost deliveries meanwhile: its client should reconnect and replay. */
  readonly ended: () => void
}

export interface DeliveryFeedShape {
  readonly publish: (deliveries: ReadonlyArray<Delivery>) => Effect.Effect<void>
  /**
   * Registers `listener` for one user's live deliveries, from the moment the
   * returned effect completes until the scope closes. The listener itself
   * decides what it holds (the SSE stream bounds it in bytes).
   */
  readonly listen: (userId: UserId, listener: FeedListener) => Effect.Effect<void, StorageUnavailable, Scope.Scope>
  /**
   * The live deliveries of one user, from the moment the returned effect
   * completes (the subscription is in place then: a delivery published after
   * that is seen). The stream fails when its bounded buffer overflows: a
   * listener that cannot keep up is dropped, never allowed to grow memory.
   */
  readonly subscribe: (
    userId: UserId,
    options: { readonly bufferSize: number }
  ) => Effect.Effect<Stream.Stream<Delivery, FeedOverflow>, StorageUnavailable, Scope.Scope>
}

/** The listener fell more than its buffer behind and was dropped. */
export class FeedOverflow extends Data.TaggedError("FeedOverflow")<{ readonly bufferSize: number }> {}

export class DeliveryFeed extends Context.Tag("restock/DeliveryFeed")<DeliveryFeed, DeliveryFeedShape>() {}
