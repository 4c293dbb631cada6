import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { defaultMargin, spacingMicros } from "../../../src/Dispatch/RateLimiter/Slots.js"
import * as RedisRateLimiter from "../../../src/Dispatch/RateLimiter/Redis.js"
import { RedisConnection } from "../../../src/Redis.js"
import { rateLimiterContract } from "../../contracts/RateLimiter.contract.js"
import * as TestRedis from "../../support/Redis.js"

rateLimiterContract("Redis, one connection per process", {
  makeShared: (limitPerSecond, processes) =>
    Effect.gen(function*() {
      const prefix = TestRedis.randomPrefix()
      yield* TestRedis.cleanUpOnClose(prefix)
      return yield* Effect.forEach(Array.from({ length: processes }), () =>
        Effect.flatMap(TestRedis.connection(prefix), (redis) =>
          RedisRateLimiter.make({ limitPerSecond }).pipe(Effect.provideService(RedisConnection, redis))))
    })
})

/** A connection under a prefix of its own, whose keys are deleted afterwards. */
const freshConnection = Effect.gen(function*() {
  const prefix = TestRedis.randomPrefix()
  yield* TestRedis.cleanUpOnClose(prefix)
  return { redis: yield* TestRedis.connection(prefix), prefix }
})

describe("Redis RateLimiter reservation script", () => {
  it.scopedLive("back-to-back reservations get slots exactly one spacing apart, on Redis' clock", () =>
    Effect.gen(function*() {
      const { redis } = yield* freshConnection
      // A second apart: a pause between two calls (GC, a loaded machine) shorter than one spacing
      // cannot let a slot lapse and start the schedule afresh. (At a real limit's 5 ms it could.)
      const spacing = spacingMicros(1, defaultMargin)
      const reservations = yield* Effect.forEach(
        Array.from({ length: 50 }),
        () => RedisRateLimiter.reserveSlot(redis, spacing)
      )

      // The first comes at once; the next 49 queue behind it (50 calls take far less than 49 spacings).
      expect(reservations[0]!.waitMicros).toBe(0)
      for (let i = 1; i < reservations.length; i++) {
        expect(reservations[i]!.slotMicros - reservations[i - 1]!.slotMicros).toBe(spacing)
        expect(reservations[i]!.waitMicros).toBeGreaterThan(0)
      }
      // Each wait is its slot minus Redis' now, which only moves forward.
      const nows = reservations.map((r) => r.slotMicros - r.waitMicros)
      expect([...nows].sort((a, b) => a - b)).toEqual(nows)
    }))

  it.scopedLive("a reservation of several slots claims them all: the next one begins that many spacings later", () =>
    Effect.gen(function*() {
      const { redis } = yield* freshConnection
      const first = yield* RedisRateLimiter.reserveSlot(redis, 2_000, 4)
      const next = yield* RedisRateLimiter.reserveSlot(redis, 2_000, 1)
      expect(next.slotMicros - first.slotMicros).toBe(4 * 2_000)
    }))

  it.scopedLive("the schedule key expires by itself about a second after the last reserved slot", () =>
    Effect.gen(function*() {
      const { prefix, redis } = yield* freshConnection
      yield* RedisRateLimiter.reserveSlot(redis, 5_000)
      const ttl = yield* redis.use("PTTL", (client) => client.pttl(`${prefix}ratelimit:tat`))
      expect(ttl).toBeGreaterThan(900)
      expect(ttl).toBeLessThanOrEqual(1_006)
    }))

  it.scopedLive("after an idle spell the next reservation starts now, not in the past (no stored-up burst)", () =>
    Effect.gen(function*() {
      const { redis } = yield* freshConnection
      // Half a second apart, so the two calls back to back stay within one spacing even when the
      // machine pauses for a while between them; the idle spell is longer than a spacing.
      const spacing = 500_000
      const first = yield* RedisRateLimiter.reserveSlot(redis, spacing)
      yield* Effect.sleep("600 millis")
      const afterIdle = yield* RedisRateLimiter.reserveSlot(redis, spacing)
      const next = yield* RedisRateLimiter.reserveSlot(redis, spacing)

      expect(afterIdle.waitMicros).toBe(0)
      expect(afterIdle.slotMicros - first.slotMicros).toBeGreaterThanOrEqual(600_000)
      expect(next.slotMicros - afterIdle.slotMicros).toBe(spacing)
      // One spacing later, less the round trip between the two calls.
      expect(next.waitMicros).toBeGreaterThan(0)
      expect(next.waitMicros).toBeLessThanOrEqual(spacing)
    }))
})

describe("Redis' clock offset, estimated from replies", () => {
  it("takes the largest lower bound: a reply that waited here does not move the slots later", () => {
    const offsetOf = RedisRateLimiter.makeClockOffset(2_000_000)
    // Redis' clock is 1,000 µs ahead; replies are handled 50 µs, then 5,000 µs (a busy loop), after Redis read its clock.
    expect(offsetOf(10_000, 9_050)).toBe(950)
    expect(offsetOf(20_000, 24_000)).toBe(950)
    expect(offsetOf(30_000, 29_020)).toBe(980)
  })

  it("forgets bounds older than it keeps, so a drift of the clocks is followed", () => {
    const offsetOf = RedisRateLimiter.makeClockOffset(3_000)
    expect(offsetOf(10_000, 9_000)).toBe(1_000)
    expect(offsetOf(12_000, 11_500)).toBe(1_000)
    expect(offsetOf(13_000, 12_600)).toBe(500)
  })
})
