/**
 * The hub both feeds route deliveries through: the listeners of this
 * process, by user. The in-memory feed publishes to it directly; the Redis
 * feed runs one on every process and feeds it from a Redis channel.
 *
 * Deliveries are routed by user rather than broadcast to every listener, so
 * publishing costs the number of listeners of the users in the batch, not of
 * every open stream. Publishing never waits: a listener is a pair of
 * callbacks (`FeedListener`), called in place, and bounds what it holds
 * itself. The `subscribe` form (a `Stream` over a dropping queue of
 * `bufferSize`, failing with `FeedOverflow` when its reader falls that far
 * behind) is built on the same listeners: no delivery is dropped silently and
 * no slow listener holds up the others.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Delivery } from "../Domain/Delivery.js"
import type { UserId } from "../Domain/Ids.js"
import { FeedOverflow, type FeedListener } from "./Feed.js"

export interface LocalHub {
  /** Hands each delivery to the listeners of its user, in order. Never waits. */
  readonly publish: (deliveries: ReadonlyArray<Delivery>) => void
  /** `listener` for `userId` from now on, removed when the scope closes. */
  readonly listen: (userId: UserId, listener: FeedListener) => Effect.Effect<void, never, Scope.Scope>
  /** The live deliveries of `userId` as a stream, from now on, until the scope closes. */
  readonly subscribe: (
    userId: UserId,
    options: { readonly bufferSize: number }
  ) => Effect.Effect<Stream.Stream<Delivery, FeedOverflow>, never, Scope.Scope>
  /**
   * Ends the listeners of `userIds` (of everyone, without), which may have
   * missed deliveries: their clients reconnect and replay the gap.
   */
  readonly end: (userIds?: Iterable<UserId>) => void
  /** Open listeners, for metrics and tests. */
  readonly listenerCount: () => number
  /** Whether `userId` has a listener here: what the Redis feed decodes, of what arrives. */
  readonly listensTo: (userId: number) => boolean
}

/**
 * A listener's deliveries as a `Stream`: a dropping queue of `bufferSize`
 * (it refuses an offer when full instead of waiting: that refusal is the
 * overflow), ended or failed through a `Deferred`.
 */
export const subscribeVia = <E>(
  listen: (userId: UserId, listener: FeedListener) => Effect.Effect<void, E, Scope.Scope>
) =>
(userId: UserId, options: { readonly bufferSize: number }): Effect.Effect<Stream.Stream<Delivery, FeedOverflow>, E, Scope.Scope> =>
  Effect.gen(function*() {
    const buffer = yield* Queue.dropping<Delivery>(options.bufferSize)
    const stop = yield* Deferred.make<void, FeedOverflow>()
    yield* Effect.addFinalizer(() => Effect.zipRight(Deferred.succeed(stop, undefined), Queue.shutdown(buffer)))
    yield* listen(userId, {
      deliver: (delivery) => {
        if (!buffer.unsafeOffer(delivery)) {
          Deferred.unsafeDone(stop, Effect.fail(new FeedOverflow({ bufferSize: options.bufferSize })))
        }
      },
      ended: () => Deferred.unsafeDone(stop, Effect.void)
    })
    return Stream.fromQueue(buffer).pipe(Stream.interruptWhenDeferred(stop))
  })

export const makeHub = (): LocalHub => {
  const listenersByUser = new Map<UserId, Set<FeedListener>>()

  const remove = (userId: UserId, listener: FeedListener) => {
    const listeners = listenersByUser.get(userId)
    if (listeners === undefined) return
    listeners.delete(listener)
    if (listeners.size === 0) listenersByUser.delete(userId)
  }

  const publish = (deliveries: ReadonlyArray<Delivery>) => {
    for (const delivery of deliveries) {
      const listeners = listenersByUser.get(delivery.userId)
      if (listeners === undefined) continue
      for (const listener of listeners) listener.deliver(delivery)
    }
  }

  const listen = (userId: UserId, listener: FeedListener) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        let listeners = listenersByUser.get(userId)
        if (listeners === undefined) {
          listeners = new Set()
          listenersByUser.set(userId, listeners)
        }
        listeners.add(listener)
      }),
      () => Effect.sync(() => remove(userId, listener))
    )

  const end = (userIds?: Iterable<UserId>) => {
    const users = userIds === undefined ? [...listenersByUser.keys()] : [...new Set(userIds)]
    for (const userId of users) {
      const listeners = listenersByUser.get(userId)
      if (listeners === undefined) continue
      listenersByUser.delete(userId)
      for (const listener of listeners) listener.ended()
    }
  }

  const listenerCount = () => {
    let count = 0
    for (const listeners of listenersByUser.values()) count += listeners.size
    return count
  }

  const listensTo = (userId: number) => listenersByUser.has(userId as UserId)

  return { publish, listen, subscribe: subscribeVia(listen), end, listenerCount, listensTo }
}
