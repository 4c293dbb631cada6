import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber, TestClock } from "effect"
import * as MemoryRateLimiter from "../../../src/Dispatch/RateLimiter/Memory.js"
import { type RateLimiterShape } from "../../../src/Dispatch/RateLimiter/RateLimiter.js"
import { defaultMargin, latenessToleranceMicros, spacingMicros } from "../../../src/Dispatch/RateLimiter/Slots.js"
import { rateLimiterContract } from "../../contracts/RateLimiter.contract.js"
import { maxInSlidingWindow } from "../../support/Rate.js"

rateLimiterContract("in memory", {
  makeShared: (limitPerSecond, processes) =>
    Effect.map(MemoryRateLimiter.make({ limitPerSecond }), (limiter) => Array.from({ length: processes }, () => limiter))
})

/** The same clock, except that its first sleep lasts `first(duration)` instead. */
const firstSleepChanged = (clock: Clock.Clock, first: (duration: Duration.Duration) => Duration.Duration): Clock.Clock => {
  let slept = false
  const changed: Clock.Clock = Object.create(clock)
  changed.sleep = (duration) => {
    if (slept) return clock.sleep(duration)
    slept = true
    return clock.sleep(first(duration))
  }
  return changed
}

/** Its first sleep lasts `extra` longer: a stalled event loop. */
const oversleepingOnce = (clock: Clock.Clock, extra: Duration.DurationInput) =>
  firstSleepChanged(clock, (duration) => Duration.sum(duration, extra))

/** Its first sleep ends `early` sooner: Node's millisecond timers do that. */
const wakingEarlyOnce = (clock: Clock.Clock, early: Duration.DurationInput) =>
  firstSleepChanged(clock, (duration) => Duration.subtract(duration, early))

/** `permits` acquires in a row, each completion's virtual time (ms). */
const acquireInRow = (limiter: RateLimiterShape, permits: number) =>
  Effect.gen(function*() {
    const times: Array<number> = []
    for (let i = 0; i < permits; i++) {
      yield* limiter.acquire
      times.push(yield* Clock.currentTimeMillis)
    }
    return times
  })

describe("in-memory RateLimiter in virtual time", () => {
  it.effect("50 acquires at 100/s with no margin take exactly 490 ms: one every 10 ms, the first at once", () =>
    Effect.gen(function*() {
      const limiter = yield* MemoryRateLimiter.make({ limitPerSecond: 100, margin: 0 })
      const fiber = yield* Effect.fork(acquireInRow(limiter, 50))

      yield* TestClock.adjust("489 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      const times = yield* Fiber.join(fiber)

      expect(times).toEqual(Array.from({ length: 50 }, (_, i) => i * 10))
    }))

  it.effect("at the default limit and margin, no one-second window holds more than 500 of 700 starts", () =>
    Effect.gen(function*() {
      const limiter = yield* MemoryRateLimiter.make({ limitPerSecond: 500 })
      const fiber = yield* Effect.fork(acquireInRow(limiter, 700))
      yield* TestClock.adjust("3 seconds")
      const times = yield* Fiber.join(fiber)

      const spacingMillis = spacingMicros(500, defaultMargin) / 1000
      expect(maxInSlidingWindow(times, 1000)).toBe(Math.ceil(1000 / spacingMillis)) // 493
      expect(times.at(-1)).toBeCloseTo(699 * spacingMillis, 6)
    }))

  it.effect("a sleep that ends early does not start early: the start still waits for its slot", () =>
    Effect.gen(function*() {
      const limiter = yield* MemoryRateLimiter.make({ limitPerSecond: 100, margin: 0 })
      yield* limiter.acquire // slot 0
      const clock = wakingEarlyOnce(yield* Effect.clock, "3 millis")
      const second = yield* Effect.fork(
        Effect.zipRight(limiter.acquire, Clock.currentTimeMillis).pipe(Effect.withClock(clock))
      )
      yield* TestClock.adjust("7 millis")
      expect(second.unsafePoll()).toBeNull()
      yield* TestClock.adjust("3 millis")
      expect(yield* Fiber.join(second)).toBe(10)
    }))

  it.effect("a minute of idling stores up nothing: the next starts are spaced from the first one on", () =>
    Effect.gen(function*() {
      const limiter = yield* MemoryRateLimiter.make({ limitPerSecond: 100, margin: 0 })
      const before = yield* Effect.fork(acquireInRow(limiter, 3))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(before)

      const after = yield* Effect.fork(
        Effect.all(Array.from({ length: 5 }, () => Effect.zipRight(limiter.acquire, Clock.currentTimeMillis)), {
          concurrency: "unbounded"
        })
      )
      yield* TestClock.adjust("1 second")
      const times = yield* Fiber.join(after)

      expect([...times].sort((a, b) => a - b)).toEqual([60_000, 60_010, 60_020, 60_030, 60_040])
    }))

  it.effect("4 fibers share the limit: 100 starts at 100/s, each 10 ms after the last, 990 ms in all", () =>
    Effect.gen(function*() {
      const limiter = yield* MemoryRateLimiter.make({ limitPerSecond: 100, margin: 0 })
      const fiber = yield* Effect.fork(
        Effect.all(Array.from({ length: 4 }, () => acquireInRow(limiter, 25)), { concurrency: "unbounded" })
      )
      yield* TestClock.adjust("2 seconds")
      const times = (yield* Fiber.join(fiber)).flat().sort((a, b) => a - b)

      expect(times).toEqual(Array.from({ length: 100 }, (_, i) => i * 10))
    }))

  it.effect("an interrupted acquirer's slot is not given to anyone else (never faster than the limit)", () =>
    Effect.gen(function*() {
      const limiter = yield* MemoryRateLimiter.make({ limitPerSecond: 100, margin: 0 })
      yield* limiter.acquire // slot 0
      const waiting = yield* Effect.fork(limiter.acquire) // slot 10
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(waiting)

      const next = yield* Effect.fork(Effect.zipRight(limiter.acquire, Clock.currentTimeMillis))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(next)).toBe(20)
    }))

  it.effect("after a stall, one late fiber per second may start; the others take new slots instead of bunching", () =>
    Effect.gen(function*() {
      // A 1 % margin, for round figures.
      const spacing = spacingMicros(100, 0.01) // 10,102 µs
      expect(latenessToleranceMicros(100, spacing)).toBe(5_100)
      const limiter = yield* MemoryRateLimiter.make({ limitPerSecond: 100, margin: 0.01 })
      const startedAt = (stall: Duration.DurationInput) =>
        Effect.gen(function*() {
          const clock = oversleepingOnce(yield* Effect.clock, stall)
          return yield* Effect.zipRight(limiter.acquire, Clock.currentTimeMillis).pipe(Effect.withClock(clock))
        })
      yield* limiter.acquire // slot 0

      // Slots 10.102 and 20.204 ms, woken 12 and 8 ms late: past the 5.1 ms tolerance.
      const first = yield* Effect.fork(startedAt("12 millis"))
      yield* Effect.yieldNow()
      const second = yield* Effect.fork(startedAt("8 millis"))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(first)).toBeCloseTo(22.102, 6) // the one late start this second
      expect(yield* Fiber.join(second)).toBeCloseTo(30.306, 6) // a new slot, one spacing after the last reserved

      // Within the tolerance, a late wake starts as it is: slot 1,010.102 ms plus 3 ms.
      yield* limiter.acquire // slot 1,000 ms, at once
      const slightlyLate = yield* Effect.fork(startedAt("3 millis"))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(slightlyLate)).toBeCloseTo(1_013.102, 6)

      // A second later, one late start is allowed again.
      yield* limiter.acquire // slot 2,000 ms, at once
      const lateAgain = yield* Effect.fork(startedAt("8 millis"))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(lateAgain)).toBeCloseTo(2_018.102, 6)
    }))
})
