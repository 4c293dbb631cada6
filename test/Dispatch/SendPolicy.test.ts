import { describe, expect, it } from "@effect/vitest"
import { Clock, Context, Duration, Effect, Either, Fiber, Layer, Ref, TestClock } from "effect"
import * as SendPolicy from "../../src/Dispatch/SendPolicy.js"
import * as MemoryRateLimiter from "../../src/Dispatch/RateLimiter/Memory.js"
import { RateLimiter, type RateLimiterShape } from "../../src/Dispatch/RateLimiter/RateLimiter.js"
import { Notification } from "../../src/Domain/Delivery.js"
import { StorageUnavailable } from "../../src/Domain/Errors.js"
import { ProductId, RestockRound, UserId } from "../../src/Domain/Ids.js"
import { Notifier } from "../../src/Notifier/Notifier.js"
import * as Recording from "../../src/Notifier/Recording.js"

/** The policy over the `Notifier` and `RateLimiter` of the context; the caller claimed the first start. */
const attemptThenRetry = (notification: Notification, options: SendPolicy.SendPolicyOptions) =>
  Effect.flatMap(
    Effect.all({ notifier: Notifier, limiter: RateLimiter }),
    (services) => SendPolicy.makeAttemptThenRetry(services, options)(notification)
  )

/** Claims a start, then sends with the policy's retries: what a round does for each subscriber. */
const send = (notification: Notification, options: SendPolicy.SendPolicyOptions) =>
  Effect.zipRight(Effect.flatMap(RateLimiter, (limiter) => limiter.acquire), attemptThenRetry(notification, options))

const notification = (userId: number) =>
  new Notification({
    userId: UserId.make(userId),
    productId: ProductId.make(9),
    productName: "Headphones",
    restockRound: RestockRound.make(2),
    sentAt: new Date(0),
    unsubscribeUrl: `http://127.0.0.1:8080/unsubscribe/token-of-${userId}`
  })

/** The Clock times (ms) at which starts were claimed from the rate limiter. */
class Acquires extends Context.Tag("test/Acquires")<Acquires, Ref.Ref<ReadonlyArray<number>>>() {}

/** The in-memory rate limiter, counting the starts claimed from it. */
const countingLimiter = (limitPerSecond: number) =>
  Layer.effectContext(
    Effect.gen(function*() {
      const inner = yield* MemoryRateLimiter.make({ limitPerSecond, margin: 0 })
      const acquires = yield* Ref.make<ReadonlyArray<number>>([])
      const limiter: RateLimiterShape = {
        limitPerSecond,
        acquire: Effect.zipRight(
          inner.acquire,
          Effect.flatMap(Clock.currentTimeMillis, (now) => Ref.update(acquires, (times) => [...times, now]))
        )
      }
      return Context.make(RateLimiter, limiter).pipe(Context.add(Acquires, acquires))
    })
  )

/** A recording sender behind a rate limiter so generous that it never waits, unless told otherwise. */
const harness = (failure: Recording.FailureScript | undefined, limitPerSecond = 1_000_000) =>
  Layer.merge(Recording.layer({ failure }), countingLimiter(limitPerSecond))

const acquireTimes = Effect.flatMap(Acquires, Ref.get)
const callTimes = Effect.map(
  Effect.flatMap(Recording.Recording, (recording) => recording.calls),
  (calls) => calls.map((call) => call.receivedAt)
)
const gaps = (times: ReadonlyArray<number>) => times.slice(1).map((time, i) => time - times[i]!)

/** Runs `effect` in the background and lets virtual time run out far past any backoff. */
const runToEnd = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.either(effect))
    yield* TestClock.adjust("5 minutes")
    return yield* Fiber.join(fiber)
  })

describe("SendPolicy", () => {
  it.effect("retries a transient failure once it succeeds: two attempts, two starts from the limiter", () =>
    Effect.gen(function*() {
      const result = yield* runToEnd(send(notification(1), { retries: 3 }))

      expect(result).toStrictEqual(Either.right({ attempts: 2 }))
      expect(yield* acquireTimes).toHaveLength(2)
      const [first, second] = yield* callTimes
      expect(first).toBe(0)
      expect(second).toBeGreaterThanOrEqual(50)
      expect(second).toBeLessThanOrEqual(100)
    }).pipe(Effect.provide(harness(Recording.failUsers([UserId.make(1)], { times: 1 })))))

  it.effect("gives up on a sender that keeps failing after retries + 1 attempts, backed off 100, 200, 400 ms… capped at 2 s", () =>
    Effect.gen(function*() {
      const retries = 6
      const startedAt = yield* Clock.currentTimeMillis
      const fiber = yield* Effect.fork(Effect.either(send(notification(1), { retries })))
      yield* TestClock.adjust("5 minutes")
      const result = yield* Fiber.join(fiber)
      const calls = yield* callTimes

      expect(calls).toHaveLength(retries + 1)
      expect(yield* acquireTimes).toStrictEqual(calls)
      // Each wait is jittered within [half, all] of its nominal backoff.
      const nominal = [100, 200, 400, 800, 1600, 2000]
      for (const [i, gap] of gaps(calls).entries()) {
        expect({ retry: i + 1, gap, inBounds: gap >= nominal[i]! / 2 && gap <= nominal[i]! }).toMatchObject({
          inBounds: true
        })
      }
      // The whole send ended within the sum of the nominal backoffs: 5.1 s.
      expect(calls[retries]! - startedAt).toBeLessThanOrEqual(5100)
      expect(calls[retries]! - startedAt).toBeGreaterThanOrEqual(2550)
      expect(Either.isLeft(result) && result.left).toMatchObject({
        _tag: "SendFailed",
        reason: "Transient",
        message: "sender failed after 7 attempts: scripted transient failure for user 1"
      })
    }).pipe(Effect.provide(harness(Recording.failAll()))))

  it.effect("with the default 3 retries, a failing sender is given up within 700 ms", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.either(send(notification(1), { retries: 3 })))
      yield* TestClock.adjust("700 millis")
      const result = yield* Fiber.join(fiber)

      expect(yield* callTimes).toHaveLength(4)
      expect(Either.isLeft(result) && result.left.message).toMatch(/^sender failed after 4 attempts: /)
    }).pipe(Effect.provide(harness(Recording.failAll()))))

  it.effect("never retries a permanent failure", () =>
    Effect.gen(function*() {
      const result = yield* runToEnd(send(notification(1), { retries: 3 }))

      expect(yield* callTimes).toStrictEqual([0])
      expect(yield* acquireTimes).toStrictEqual([0])
      expect(Either.isLeft(result) && result.left).toMatchObject({
        reason: "Permanent",
        message: "sender failed after 1 attempt: scripted permanent failure for user 1"
      })
    }).pipe(Effect.provide(harness(Recording.failAll({ reason: "Permanent" })))))

  it.effect("stops at a permanent failure that follows transient ones", () =>
    Effect.gen(function*() {
      const result = yield* runToEnd(send(notification(1), { retries: 5 }))

      expect(yield* callTimes).toHaveLength(3)
      expect(Either.isLeft(result) && result.left).toMatchObject({
        reason: "Permanent",
        message: "sender failed after 3 attempts: scripted permanent failure for call 3"
      })
    }).pipe(Effect.provide(harness(Recording.firstOf(Recording.failCall(3, { reason: "Permanent" }), Recording.failAll({ times: 2 }))))))

  it.effect("with no retries, a transient failure is final", () =>
    Effect.gen(function*() {
      const result = yield* runToEnd(send(notification(1), { retries: 0 }))

      expect(yield* callTimes).toHaveLength(1)
      expect(Either.isLeft(result) && result.left.message).toBe(
        "sender failed after 1 attempt: scripted transient failure for user 1"
      )
    }).pipe(Effect.provide(harness(Recording.failAll()))))

  it.effect("waits as long as Retry-After says before the retry, and no longer", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(send(notification(1), { retries: 3 }))
      yield* TestClock.adjust("4999 millis")
      expect(yield* callTimes).toStrictEqual([0])
      expect(yield* acquireTimes).toStrictEqual([0])
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toStrictEqual({ attempts: 2 })
      expect(yield* callTimes).toStrictEqual([0, 5000])
      expect(yield* acquireTimes).toStrictEqual([0, 5000])
    }).pipe(Effect.provide(harness(Recording.failCall(1, { retryAfter: "5 seconds" })))))

  it.effect("keeps its own backoff when Retry-After asks for less", () =>
    Effect.gen(function*() {
      yield* runToEnd(send(notification(1), { retries: 3 }))
      const [, retriedAt] = yield* callTimes

      expect(retriedAt).toBeGreaterThanOrEqual(50)
      expect(retriedAt).toBeLessThanOrEqual(100)
    }).pipe(Effect.provide(harness(Recording.failCall(1, { retryAfter: "1 millis" })))))

  it.effect("waits out a Retry-After of 30 s, but fails at once on a longer one", () =>
    Effect.gen(function*() {
      const atLimit = yield* runToEnd(send(notification(1), { retries: 3 }))
      expect(atLimit).toStrictEqual(Either.right({ attempts: 2 }))
      expect(yield* callTimes).toStrictEqual([0, 30_000])

      const beyond = yield* runToEnd(send(notification(2), { retries: 3 }))
      const calls = yield* Effect.flatMap(Recording.Recording, (recording) => recording.calls)
      expect(calls.filter((call) => call.notification.userId === 2)).toHaveLength(1)
      expect(Either.isLeft(beyond) && beyond.left).toMatchObject({
        reason: "Transient",
        message: "sender failed after 1 attempt (it asked to wait 31s, more than 30s): scripted transient failure for user 2",
        retryAfter: Duration.seconds(31)
      })
      expect(yield* acquireTimes).toHaveLength(3)
    }).pipe(
      Effect.provide(harness(Recording.firstOf(
        Recording.failUsers([UserId.make(1)], { times: 1, retryAfter: "30 seconds" }),
        Recording.failUsers([UserId.make(2)], { retryAfter: "31 seconds" })
      )))
    ))

  it.effect("the policy leaves the first start to the caller and claims one per retry", () =>
    Effect.gen(function*() {
      const result = yield* runToEnd(attemptThenRetry(notification(1), { retries: 3 }))

      expect(result).toStrictEqual(Either.right({ attempts: 3 }))
      expect(yield* callTimes).toHaveLength(3)
      const acquires = yield* acquireTimes
      expect(acquires).toHaveLength(2)
      expect(acquires).toStrictEqual((yield* callTimes).slice(1))
    }).pipe(Effect.provide(harness(Recording.failAll({ times: 2 })))))

  it.effect("a retry waits for the rate limiter like any send", () =>
    Effect.gen(function*() {
      // 2 per second: starts 500 ms apart. The backoff (≤ 100 ms) is shorter than that.
      const result = yield* runToEnd(send(notification(1), { retries: 3 }))

      expect(result).toStrictEqual(Either.right({ attempts: 2 }))
      expect(yield* callTimes).toStrictEqual([0, 500])
    }).pipe(Effect.provide(harness(Recording.failCall(1), 2))))

  it.effect("reports each retry: the failed attempt, its failure and the wait", () =>
    Effect.gen(function*() {
      const retries = yield* Ref.make<ReadonlyArray<SendPolicy.RetryInfo>>([])
      yield* runToEnd(
        send(notification(1), {
          retries: 2,
          onRetry: (info) => Ref.update(retries, (infos) => [...infos, info])
        })
      )
      const reported = yield* Ref.get(retries)

      expect(reported.map((info) => info.attempt)).toStrictEqual([1, 2])
      expect(reported.map((info) => info.notification.userId)).toStrictEqual([1, 1])
      expect(reported.map((info) => info.failure.message)).toStrictEqual([
        "scripted transient failure for user 1",
        "scripted transient failure for user 1"
      ])
      expect(reported.map((info) => Duration.toMillis(info.delay))).toStrictEqual(gaps(yield* callTimes))
    }).pipe(Effect.provide(harness(Recording.failAll()))))

  it.effect("spreads the retries of failures that happened together", () =>
    Effect.gen(function*() {
      yield* runToEnd(
        Effect.forEach(
          Array.from({ length: 20 }, (_, i) => notification(i + 1)),
          (each) => send(each, { retries: 1 }),
          { concurrency: "unbounded" }
        )
      )
      const calls = yield* Effect.flatMap(Recording.Recording, (recording) => recording.calls)
      const retriedAt = calls.filter((call) => call.attempt === 2).map((call) => call.receivedAt)

      expect(retriedAt).toHaveLength(20)
      // (Retries drawn in the same millisecond take the limiter's microsecond spacing.)
      expect(retriedAt.every((time) => time >= 50 && time < 100.1)).toBe(true)
      expect(new Set(retriedAt.map(Math.floor)).size).toBeGreaterThan(5)
    }).pipe(Effect.provide(harness(Recording.failAll({ times: 1 })))))

  it.effect("fails with the rate limiter's error when its store is unreachable", () =>
    Effect.gen(function*() {
      let acquired = 0
      const limiter: RateLimiterShape = {
        limitPerSecond: 500,
        acquire: Effect.suspend(() =>
          ++acquired === 1 ? Effect.void : Effect.fail(new StorageUnavailable({ message: "redis down" }))
        )
      }
      const result = yield* runToEnd(
        send(notification(1), { retries: 3 }).pipe(Effect.provideService(RateLimiter, limiter))
      )

      expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "StorageUnavailable", message: "redis down" })
      expect(yield* callTimes).toHaveLength(1)
    }).pipe(Effect.provide(Recording.layer({ failure: Recording.failAll() }))))
})
