/**
 * The Redis `RateLimiter`: the same evenly spaced starts as the in-process
 * one, with the schedule kept in Redis so every process sharing the server
 * shares one limit.
 *
 * One script reserves a slot against Redis' own clock (`TIME`), so the
 * processes need no synchronised clocks: it answers how long to wait, and the
 * caller sleeps that long through Effect's `Clock`. The schedule is one key,
 * `<prefix>ratelimit:tat` (the theoretical arrival time of the next start, in
 * microseconds of Redis' clock), which expires by itself a second after the
 * last reserved slot.
 */
import { Clock, Config, type ConfigError, Duration, Effect, Layer } from "effect"
import type { StorageUnavailable } from "../../Domain/Errors.js"
import { luaScript, RedisConnection, type RedisConnectionShape } from "../../Redis.js"
import {
  defaultMargin,
  makeLateStartGuard,
  RateLimiter,
  type RateLimiterShape,
  spacingMicros
} from "./RateLimiter.js"

export interface Options {
  readonly limitPerSecond: number
  /** The share of the limit kept free for arrival jitter. Default `defaultMargin` (1.5 %). */
  readonly margin?: number | undefined
}

/**
 * KEYS[1] the theoretical arrival time; ARGV[1] the spacing (µs).
 * Returns { microseconds to wait, the reserved slot (µs of Redis' clock) }.
 * Values are formatted with %.0f: Lua would print a microsecond timestamp in
 * exponent notation.
 */
export const reserveSlotScript = luaScript(`
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local spacing = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local slot = math.max(tat, now)
local nextArrival = slot + spacing
local ttlMillis = math.ceil((nextArrival - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', nextArrival), 'PX', string.format('%.0f', ttlMillis))
return { string.format('%.0f', slot - now), string.format('%.0f', slot) }
`)

export const scheduleKey = (keyPrefix: string): string => `${keyPrefix}ratelimit:tat`

export interface Reservation {
  readonly waitMicros: number
  readonly slotMicros: number
}

/** Reserves the next start: the slot, and how long from now (Redis' now) until it. */
export const reserveSlot = (
  redis: RedisConnectionShape,
  spacing: number
): Effect.Effect<Reservation, StorageUnavailable> =>
  redis.runScript("rate limit reservation", reserveSlotScript, [scheduleKey(redis.keyPrefix)], [spacing]).pipe(
    Effect.map((reply) => {
      const [wait, slot] = reply as [string, string]
      return { waitMicros: Number(wait), slotMicros: Number(slot) }
    })
  )

const sleepMicros = (micros: number): Effect.Effect<void> =>
  micros > 0 ? Effect.sleep(Duration.micros(BigInt(micros))) : Effect.void

const nowMicros: Effect.Effect<number> = Clock.clockWith((clock) =>
  Effect.sync(() => Number((clock.unsafeCurrentTimeNanos() + 500n) / 1000n))
)

export const make = (options: Options): Effect.Effect<RateLimiterShape, never, RedisConnection> =>
  Effect.gen(function*() {
    const redis = yield* RedisConnection
    const spacing = spacingMicros(options.limitPerSecond, options.margin ?? defaultMargin)
    const mayStart = makeLateStartGuard(options.limitPerSecond, spacing, { soleUser: false })

    const acquire = Effect.gen(function*() {
      for (let reservation = 1;; reservation++) {
        const { waitMicros } = yield* reserveSlot(redis, spacing)
        // The slot on this process' clock, as of the reply (half a round trip late at most).
        const slot = (yield* nowMicros) + waitMicros
        // Interrupted here, the slot stays reserved and unused: never too fast.
        yield* sleepMicros(waitMicros)
        if (mayStart(slot, yield* nowMicros, reservation)) return
      }
    })

    return { acquire, limitPerSecond: options.limitPerSecond } satisfies RateLimiterShape
  })

export const layer = (options: Options): Layer.Layer<RateLimiter, never, RedisConnection> =>
  Layer.effect(RateLimiter, make(options))

export const layerConfig = (
  options: Config.Config.Wrap<Options>
): Layer.Layer<RateLimiter, ConfigError.ConfigError, RedisConnection> =>
  Layer.effect(RateLimiter, Effect.flatMap(Config.unwrap(options), make))
