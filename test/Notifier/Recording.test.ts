import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Either, Fiber, Ref, TestClock } from "effect"
import { Notification } from "../../src/Domain/Delivery.js"
import { ProductId, RestockRound, UserId } from "../../src/Domain/Ids.js"
import { Notifier } from "../../src/Notifier/Notifier.js"
import * as Recording from "../../src/Notifier/Recording.js"
import * as ViaFeed from "../../src/Notifier/ViaFeed.js"

const notification = (userId: number) =>
  new Notification({
    userId: UserId.make(userId),
    productId: ProductId.make(1),
    productName: "Kettle",
    restockRound: RestockRound.make(1),
    sentAt: new Date(0),
    unsubscribeUrl: `http://127.0.0.1:8080/unsubscribe/token-of-${userId}`
  })

const sendAll = (users: ReadonlyArray<number>) =>
  Effect.flatMap(Notifier, (notifier) =>
    Effect.forEach(users, (user) => Effect.either(notifier.send(notification(user))), { concurrency: "unbounded" }))

describe("Recording notifier", () => {
  it.effect("records each call with the Clock time it was received", () =>
    Effect.gen(function*() {
      const notifier = yield* Notifier
      yield* TestClock.adjust("1 second")
      yield* notifier.send(notification(1))
      yield* TestClock.adjust("250 millis")
      yield* notifier.send(notification(2))

      const calls = yield* Effect.flatMap(Recording.Recording, (recording) => recording.calls)
      expect(calls.map(({ attempt, index, notification, receivedAt }) => ({
        index,
        user: notification.userId,
        attempt,
        receivedAt
      }))).toStrictEqual([
        { index: 1, user: 1, attempt: 1, receivedAt: 1000 },
        { index: 2, user: 2, attempt: 1, receivedAt: 1250 }
      ])
    }).pipe(Effect.provide(Recording.layer())))

  it.effect("answers after the scripted latency, so sends can complete out of order", () =>
    Effect.gen(function*() {
      const completed = yield* Ref.make<ReadonlyArray<number>>([])
      const notifier = yield* Notifier
      const fiber = yield* Effect.forEach(
        [1, 2, 3],
        (user) => Effect.zipRight(notifier.send(notification(user)), Ref.update(completed, (users) => [...users, user])),
        { concurrency: "unbounded" }
      ).pipe(Effect.fork)

      yield* TestClock.adjust("9 millis")
      expect(yield* Ref.get(completed)).toStrictEqual([])
      yield* TestClock.adjust("1 millis")
      expect(yield* Ref.get(completed)).toStrictEqual([3])
      yield* TestClock.adjust("20 millis")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(completed)).toStrictEqual([3, 2, 1])
    }).pipe(
      Effect.provide(Recording.layer({ latency: (call) => Duration.millis(40 - 10 * call.index) }))
    ))

  it.effect("fails the scripted users, only their first attempts when told how many", () =>
    Effect.gen(function*() {
      const results = yield* sendAll([1, 2, 3, 2, 3, 2])
      const recording = yield* Recording.Recording

      expect(results.map((result) => Either.isLeft(result) ? result.left.reason : "ok")).toStrictEqual([
        "ok",
        "Transient",
        "Permanent",
        "Transient",
        "Permanent",
        "ok"
      ])
      expect((yield* recording.calls).map((call) => call.attempt)).toStrictEqual([1, 1, 1, 2, 2, 3])
      expect((yield* recording.delivered).map((delivered) => delivered.userId)).toStrictEqual([1, 2])
    }).pipe(
      Effect.provide(Recording.layer({
        failure: Recording.firstOf(
          Recording.failUsers([UserId.make(2)], { times: 2 }),
          Recording.failUsers([UserId.make(3)], { reason: "Permanent" })
        )
      }))
    ))

  it.effect("fails the k-th call with the scripted Retry-After", () =>
    Effect.gen(function*() {
      const results = yield* sendAll([1, 2, 3])
      const failed = results.filter(Either.isLeft).map((result) => result.left)

      expect(results.map(Either.isRight)).toStrictEqual([true, false, true])
      expect(failed[0]!.retryAfter).toStrictEqual(Duration.seconds(3))
      expect(failed[0]!.message).toBe("scripted transient failure for call 2")
    }).pipe(Effect.provide(Recording.layer({ failure: Recording.failCall(2, { retryAfter: "3 seconds" }) }))))

  it.effect("runs the hook on receipt, before the latency, with the layer's context", () =>
    Effect.gen(function*() {
      const notifier = yield* Notifier
      const fiber = yield* Effect.fork(notifier.send(notification(5)))
      yield* TestClock.adjust("0 millis")
      // Received (the hook ran) though not yet answered.
      expect(yield* Ref.get(yield* SeenUsers)).toStrictEqual([5])
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
    }).pipe(
      Effect.provide(
        Recording.layer({
          latency: "1 second",
          onReceive: (call) => Effect.flatMap(SeenUsers, (seen) => Ref.update(seen, (users) => [...users, call.notification.userId]))
        })
      ),
      Effect.provideServiceEffect(SeenUsers, Ref.make<ReadonlyArray<number>>([]))
    ))
})

describe("SSE notifier", () => {
  it.effect("accepts every notification at once: the SSE streams are fed from the records", () =>
    Effect.gen(function*() {
      const results = yield* sendAll([1, 2, 3])
      expect(results.every(Either.isRight)).toBe(true)
    }).pipe(Effect.provide(ViaFeed.layer)))
})

class SeenUsers extends Context.Tag("test/SeenUsers")<SeenUsers, Ref.Ref<ReadonlyArray<number>>>() {}
