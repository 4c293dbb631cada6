/**
 * The hub both feeds route deliveries through: the listeners of this
 * process, by user. The in-memory feed publishes to it directly; the Redis
 * feed runs one on every process and feeds it from a Redis channel.
 *
 * Deliveries are routed by user rather than broadcast to every listener, so
 * publishing costs the number of listeners of the users in the batch, not of
 * every open stream. Publishing never waits: each listener has a buffer of
 * `bufferSize`, and a listener whose buffer is full when a delivery arrives is
 * dropped (its stream fails with `FeedOverflow`, and it replays from the
 * database when it reconnects) — no delivery is dropped silently and no slow
 * listener holds up the others.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { Delivery } from "../Domain/Delivery.js"
import type { UserId } from "../Domain/Ids.js"
import { FeedOverflow } from "./Feed.js"

interface Listener {
  readonly buffer: Queue.Queue<Delivery>
  /** Succeeds to end the stream, fails to fail it with `FeedOverflow`. */
  readonly stop: Deferred.Deferred<void, FeedOverflow>
  readonly bufferSize: number
}

export interface LocalHub {
  /** Hands each delivery to the listeners of its user, in order. Never waits. */
  readonly publish: (deliveries: ReadonlyArray<Delivery>) => void
  /** A listener for `userId` from now on, removed when the scope closes. */
  readonly subscribe: (
    userId: UserId,
    options: { readonly bufferSize: number }
  ) => Effect.Effect<Stream.Stream<Delivery, FeedOverflow>, never, Scope.Scope>
  /**
   * Ends the streams of `userIds` (of everyone, without), which may have
   * missed deliveries: their clients reconnect and replay the gap.
   */
  readonly end: (userIds?: Iterable<UserId>) => void
  /** Open listeners, for metrics and tests. */
  readonly listenerCount: () => number
  /** Whether `userId` has a listener here: what the Redis feed decodes, of what arrives. */
  readonly listensTo: (userId: number) => boolean
}

export const makeHub = (): LocalHub => {
  const listenersByUser = new Map<UserId, Set<Listener>>()

  const remove = (userId: UserId, listener: Listener) => {
    const listeners = listenersByUser.get(userId)
    if (listeners === undefined) return
    listeners.delete(listener)
    if (listeners.size === 0) listenersByUser.delete(userId)
  }

  const publish = (deliveries: ReadonlyArray<Delivery>) => {
    for (const delivery of deliveries) {
      const listeners = listenersByUser.get(delivery.userId)
      if (listeners === undefined) continue
      for (const listener of listeners) {
        if (listener.buffer.unsafeOffer(delivery)) continue
        remove(delivery.userId, listener)
        Deferred.unsafeDone(listener.stop, Effect.fail(new FeedOverflow({ bufferSize: listener.bufferSize })))
      }
    }
  }

  const subscribe = (userId: UserId, options: { readonly bufferSize: number }) =>
    Effect.acquireRelease(
      Effect.gen(function*() {
        const listener: Listener = {
          // A dropping queue refuses an offer when full instead of waiting: that refusal is the overflow.
          buffer: yield* Queue.dropping<Delivery>(options.bufferSize),
          stop: yield* Deferred.make<void, FeedOverflow>(),
          bufferSize: options.bufferSize
        }
        let listeners = listenersByUser.get(userId)
        if (listeners === undefined) {
          listeners = new Set()
          listenersByUser.set(userId, listeners)
        }
        listeners.add(listener)
        return listener
      }),
      (listener) =>
        Effect.suspend(() => {
          remove(userId, listener)
          Deferred.unsafeDone(listener.stop, Effect.void)
          return Queue.shutdown(listener.buffer)
        })
    ).pipe(
      Effect.map((listener) => Stream.fromQueue(listener.buffer).pipe(Stream.interruptWhenDeferred(listener.stop)))
    )

  const end = (userIds?: Iterable<UserId>) => {
    const users = userIds === undefined ? [...listenersByUser.keys()] : [...new Set(userIds)]
    for (const userId of users) {
      const listeners = listenersByUser.get(userId)
      if (listeners === undefined) continue
      listenersByUser.delete(userId)
      for (const listener of listeners) Deferred.unsafeDone(listener.stop, Effect.void)
    }
  }

  const listenerCount = () => {
    let count = 0
    for (const listeners of listenersByUser.values()) count += listeners.size
    return count
  }

  const listensTo = (userId: number) => listenersByUser.has(userId as UserId)

  return { publish, subscribe, end, listenerCount, listensTo }
}
