/**
 * What every `DeliveryFeed` adapter guarantees: a listener sees the
 * deliveries of its own user, in publish order, from the moment `subscribe`
 * (or `listen`, its callback form) returns; every listener of a user sees them; a listener that falls more
 * than its buffer behind is dropped with `FeedOverflow` while the others go
 * on; closing a listener's scope ends its stream.
 *
 * `makeFeeds(n)` gives n feeds that reach each other: for the in-process
 * adapter the same feed n times, for Redis one per connection, standing for
 * separate processes. Deliveries are published on the first and listened to
 * on the last.
 */
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Scope, Stream } from "effect"
import { Delivery } from "../../src/Domain/Delivery.js"
import { DeliveryId, ProductId, RestockRound, UserId } from "../../src/Domain/Ids.js"
import { type DeliveryFeedShape, FeedOverflow } from "../../src/Feed/Feed.js"

export interface DeliveryFeedUnderTest {
  readonly makeFeeds: (processes: number) => Effect.Effect<ReadonlyArray<DeliveryFeedShape>, never, Scope.Scope>
}

let nextId = 1
const delivery = (userId: number, productId = 7): Delivery =>
  new Delivery({
    id: DeliveryId.make(nextId++),
    productId: ProductId.make(productId),
    productName: `Product ${productId}`,
    userId: UserId.make(userId),
    restockRound: RestockRound.make(1),
    sentAt: new Date(Date.UTC(2026, 10, 25, 12, 0, 0, nextId))
  })

/** Collects `n` deliveries from the stream, failing the test if they do not come within 5 s. */
const take = (stream: Stream.Stream<Delivery, FeedOverflow>, n: number) =>
  Stream.runCollect(Stream.take(stream, n)).pipe(
    Effect.map(Chunk.toReadonlyArray),
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`fewer than ${n} deliveries arrived`) })
  )

export const deliveryFeedContract = (name: string, underTest: DeliveryFeedUnderTest) =>
  describe(`DeliveryFeed contract: ${name}`, () => {
    it.scopedLive("a listener sees its own user's deliveries only, in publish order, from the moment subscribe returns", () =>
      Effect.gen(function*() {
        const [publisher, listener] = yield* Effect.map(underTest.makeFeeds(2), (feeds) => [feeds[0]!, feeds.at(-1)!])
        const stream = yield* listener.subscribe(UserId.make(1), { bufferSize: 100 })
        const batches = [
          [delivery(1), delivery(2), delivery(1, 8)],
          [delivery(3)],
          [delivery(2), delivery(1), delivery(1, 9), delivery(4)]
        ]
        for (const batch of batches) yield* publisher.publish(batch)

        const received = yield* take(stream, 4)
        expect(received).toEqual(batches.flat().filter((d) => d.userId === 1))
      }))

    it.scopedLive("a callback listener is called with its user's deliveries in publish order, until its scope closes", () =>
      Effect.gen(function*() {
        const [publisher, listener] = yield* Effect.map(underTest.makeFeeds(2), (feeds) => [feeds[0]!, feeds.at(-1)!])
        const heard: Array<Delivery> = []
        let ended = 0
        const scope = yield* Scope.make()
        yield* listener.listen(UserId.make(21), { deliver: (d) => heard.push(d), ended: () => (ended += 1) }).pipe(
          Scope.extend(scope)
        )
        const first = [delivery(21), delivery(22), delivery(21, 8)]
        yield* publisher.publish(first)
        yield* Effect.gen(function*() {
          while (heard.length < 2) yield* Effect.sleep("10 millis")
        }).pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("the deliveries never came") }))
        expect(heard).toEqual(first.filter((d) => d.userId === 21))

        yield* Scope.close(scope, Exit.void)
        // A later listener of the same user hears the next one (by then, over Redis too, it has
        // reached every process): the closed one must not.
        const after = yield* listener.subscribe(UserId.make(21), { bufferSize: 10 })
        const next = delivery(21)
        yield* publisher.publish([next])
        expect(yield* take(after, 1)).toEqual([next])
        expect(heard).toHaveLength(2)
        expect(ended).toBe(0)
      }))

    it.scopedLive("two listeners of one user both see every delivery", () =>
      Effect.gen(function*() {
        const feeds = yield* underTest.makeFeeds(2)
        const first = yield* feeds[0]!.subscribe(UserId.make(5), { bufferSize: 10 })
        const second = yield* feeds.at(-1)!.subscribe(UserId.make(5), { bufferSize: 10 })
        const published = [delivery(5), delivery(6), delivery(5)]
        yield* feeds[0]!.publish(published)

        const expected = published.filter((d) => d.userId === 5)
        expect(yield* take(first, 2)).toEqual(expected)
        expect(yield* take(second, 2)).toEqual(expected)
      }))

    it.scopedLive("a listener that falls more than its buffer behind fails with FeedOverflow; the others go on", () =>
      Effect.gen(function*() {
        const [publisher, listener] = yield* Effect.map(underTest.makeFeeds(2), (feeds) => [feeds[0]!, feeds.at(-1)!])
        const slow = yield* listener.subscribe(UserId.make(9), { bufferSize: 3 })
        const keepingUp = yield* listener.subscribe(UserId.make(9), { bufferSize: 100 })
        const first = Array.from({ length: 5 }, () => delivery(9))
        yield* publisher.publish(first)
        // Once the listener that keeps up has all five, the slow one's buffer of 3 has overflowed.
        expect(yield* take(keepingUp, 5)).toEqual(first)

        const failure = yield* Stream.runCollect(slow).pipe(Effect.flip, Effect.timeout("5 seconds"))
        expect(failure).toEqual(new FeedOverflow({ bufferSize: 3 }))

        const later = [delivery(9), delivery(9)]
        yield* publisher.publish(later)
        expect(yield* take(keepingUp, 2)).toEqual(later)
      }))

    it.scopedLive("a listener that reads as fast as deliveries come never overflows a small buffer", () =>
      Effect.gen(function*() {
        const [publisher, listener] = yield* Effect.map(underTest.makeFeeds(2), (feeds) => [feeds[0]!, feeds.at(-1)!])
        const stream = yield* listener.subscribe(UserId.make(11), { bufferSize: 2 })
        const reader = yield* Effect.fork(take(stream, 20))
        const published: Array<Delivery> = []
        for (let i = 0; i < 10; i++) {
          const batch = [delivery(11), delivery(11)]
          published.push(...batch)
          yield* publisher.publish(batch)
          yield* Effect.sleep("20 millis")
        }
        expect(yield* Fiber.join(reader)).toEqual(published)
      }))

    it.scopedLive("closing the listener's scope ends its stream, after what it had received", () =>
      Effect.gen(function*() {
        const [publisher, listener] = yield* Effect.map(underTest.makeFeeds(2), (feeds) => [feeds[0]!, feeds.at(-1)!])
        const scope = yield* Scope.make()
        const stream = yield* listener.subscribe(UserId.make(12), { bufferSize: 10 }).pipe(Scope.extend(scope))
        const reader = yield* Effect.fork(Stream.runCollect(stream))
        yield* publisher.publish([delivery(12)])
        yield* Effect.sleep("100 millis")
        yield* Scope.close(scope, Exit.void)

        const received = yield* Fiber.join(reader).pipe(Effect.timeout("5 seconds"))
        expect(Chunk.size(received)).toBe(1)
        yield* publisher.publish([delivery(12)]) // nobody listens: nothing to do, no error
      }))
  })
