/**
 * The Redis `RateLimiter`: the same evenly spaced starts as the in-process
 * one, with the schedule kept in Redis so every process sharing the server
 * shares one limit.
 *
 * One script reserves the next few slots (`slotsPerReservation`: about 20 ms
 * of them) against Redis' own clock (`TIME`), so the processes need no
 * synchronised clocks: it answers how long until the first, and the caller
 * sleeps until each slot in turn through Effect's `Clock`. The schedule is one key,
 * `<prefix>ratelimit:tat` (the theoretical arrival time of the next start, in
 * microseconds of Redis' clock), which expires by itself a second after the
 * last reserved slot.
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { StorageUnavailable } from "../../Domain/Errors.js"
import { luaScript, RedisConnection, type RedisConnectionShape } from "../../Redis.js"
import { announced, type Options, RateLimiter, type RateLimiterShape } from "./RateLimiter.js"
import { makeSpacedAcquire, nowMicros } from "./Slots.js"

export type { Options }

/**
 * KEYS[1] the theoretical arrival time; ARGV[1] the spacing (µs); ARGV[2]
 * how many consecutive slots to claim (1 if absent).
 * Returns { microseconds to wait for the first, the first slot (µs of Redis' clock) }.
 * Values are formatted with %.0f: Lua would print a microsecond timestamp in
 * exponent notation.
 */
export const reserveSlotScript = luaScript(`
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local spacing = tonumber(ARGV[1])
local count = tonumber(ARGV[2] or '1') or 1
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local slot = math.max(tat, now)
local nextArrival = slot + count * spacing
local ttlMillis = math.ceil((nextArrival - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', nextArrival), 'PX', string.format('%.0f', ttlMillis))
return { string.format('%.0f', slot - now), string.format('%.0f', slot) }
`)

export const scheduleKey = (keyPrefix: string): string => `${keyPrefix}ratelimit:tat`

export interface Reservation {
  readonly waitMicros: number
  readonly slotMicros: number
}

/** Reserves the next `count` starts: the first slot, and how long from now (Redis' now) until it. */
export const reserveSlot = (
  redis: RedisConnectionShape,
  spacing: number,
  count = 1
): Effect.Effect<Reservation, StorageUnavailable> =>
  redis.runScript("rate limit reservation", reserveSlotScript, [scheduleKey(redis.keyPrefix)], [spacing, count]).pipe(
    Effect.map((reply) => {
      const [wait, slot] = reply as [string, string]
      return { waitMicros: Number(wait), slotMicros: Number(slot) }
    })
  )

/**
 * Redis' clock minus this process' clock, in µs, estimated from replies.
 * A reply's Redis "now" was read after the request left and before the
 * reply was handled here, so `redisNow − handledAt` is a lower bound of the
 * offset; the largest bound of the last few seconds is the closest (a reply
 * that waited on a busy event loop gives a smaller one, and is outvoted).
 * Being a lower bound, it converts a slot to this process' clock never
 * earlier than the slot really is. Old bounds expire, so a drift of the
 * two clocks is followed.
 */
export const makeClockOffset = (keepMicros = 2_000_000) => {
  const bounds: Array<{ readonly at: number; readonly bound: number }> = []
  return (redisNow: number, handledAt: number): number => {
    bounds.push({ at: handledAt, bound: redisNow - handledAt })
    while (bounds.length > 1 && handledAt - bounds[0]!.at > keepMicros) bounds.shift()
    let offset = Number.NEGATIVE_INFINITY
    for (const { bound } of bounds) offset = Math.max(offset, bound)
    return offset
  }
}

export const make = (options: Options): Effect.Effect<RateLimiterShape, never, RedisConnection> =>
  Effect.gen(function*() {
    const redis = yield* RedisConnection
    const offsetOf = makeClockOffset()

    const acquire = makeSpacedAcquire({
      ...options,
      soleUser: false,
      // The first slot on this process' clock. (Taken as "now + wait" at the reply, a reply that
      // sat behind other work would move all of its slots later, into another process' slots.)
      reserve: (count, spacing) =>
        Effect.flatMap(reserveSlot(redis, spacing, count), ({ slotMicros, waitMicros }) =>
          Effect.map(nowMicros, (handledAt) => slotMicros - offsetOf(slotMicros - waitMicros, handledAt)))
    })

    return { acquire, limitPerSecond: options.limitPerSecond } satisfies RateLimiterShape
  })

export const layer = (options: Options): Layer.Layer<RateLimiter, never, RedisConnection> =>
  Layer.effect(RateLimiter, announced(make(options)))

export const layerConfig = (
  options: Config.Config.Wrap<Options>
): Layer.Layer<RateLimiter, ConfigError.ConfigError, RedisConnection> =>
  Layer.effect(RateLimiter, announced(Effect.flatMap(Config.unwrap(options), make)))
