/**
 * The in-process `RateLimiter`: evenly spaced starts (GCRA with no burst)
 * for one process, timed by Effect's `Clock`, so `TestClock` drives it.
 *
 * A reservation claims the next free slots, from `max(theoretical arrival
 * time, now)`, and moves the theoretical arrival time past them; each
 * `acquire` sleeps until the next claimed slot. Idle time is never banked:
 * after a pause the next start is now and the one after it a full spacing
 * later. A fiber that wakes too late (a stalled event loop) takes another
 * slot rather than start in a bunch.
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import { announced, type Options, RateLimiter, type RateLimiterShape } from "./RateLimiter.js"
import { makeSpacedAcquire, nowMicros } from "./Slots.js"

export type { Options }

export const make = (options: Options): Effect.Effect<RateLimiterShape> =>
  Effect.gen(function*() {
    // The theoretical arrival time of the next start, in microseconds.
    const theoreticalArrival = yield* Ref.make(0)

    const acquire = makeSpacedAcquire({
      ...options,
      soleUser: true,
      reserve: (count, spacing) =>
        Effect.flatMap(nowMicros, (now) =>
          Ref.modify(theoreticalArrival, (tat) => {
            const slot = Math.max(tat, now)
            return [slot, slot + count * spacing]
          }))
    })

    return { acquire, limitPerSecond: options.limitPerSecond } satisfies RateLimiterShape
  })

export const layer = (options: Options): Layer.Layer<RateLimiter> => Layer.effect(RateLimiter, announced(make(options)))

export const layerConfig = (options: Config.Config.Wrap<Options>): Layer.Layer<RateLimiter, ConfigError.ConfigError> =>
  Layer.effect(RateLimiter, announced(Effect.flatMap(Config.unwrap(options), make)))
