/**
 * The in-process `RateLimiter`: evenly spaced starts (GCRA with no burst)
 * for one process, timed by Effect's `Clock`, so `TestClock` drives it.
 *
 * Each `acquire` reserves the next free slot, `max(theoretical arrival time,
 * now)`, moves the theoretical arrival time one spacing past it, and sleeps
 * until the slot. Idle time is never banked: after a pause the next start is
 * now and the one after it a full spacing later. A fiber that wakes too late
 * (a stalled event loop) reserves again rather than start in a bunch.
 */
import { Clock, Config, type ConfigError, Duration, Effect, Layer, Ref } from "effect"
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
 * Now, in whole microseconds. `TestClock` keeps fractional milliseconds after
 * a sub-millisecond sleep; rounding keeps its floating-point error out of
 * the slots.
 */
export const nowMicros: Effect.Effect<number> = Clock.clockWith((clock) =>
  Effect.sync(() => Number((clock.unsafeCurrentTimeNanos() + 500n) / 1000n))
)

/** Sleeps through `Clock`, if there is anything to wait. */
export const sleepMicros = (micros: number): Effect.Effect<void> =>
  micros > 0 ? Effect.sleep(Duration.micros(BigInt(micros))) : Effect.void

export const make = (options: Options): Effect.Effect<RateLimiterShape> =>
  Effect.gen(function*() {
    const spacing = spacingMicros(options.limitPerSecond, options.margin ?? defaultMargin)
    // The theoretical arrival time of the next start, in microseconds.
    const theoreticalArrival = yield* Ref.make(0)

    const mayStart = makeLateStartGuard(options.limitPerSecond, spacing, { soleUser: true })

    const reserve = (now: number) =>
      Ref.modify(theoreticalArrival, (tat) => {
        const slot = Math.max(tat, now)
        return [slot, slot + spacing]
      })

    const acquire = Effect.gen(function*() {
      for (let reservation = 1;; reservation++) {
        const now = yield* nowMicros
        const slot = yield* reserve(now)
        // Interrupted here, the slot stays reserved and unused: never too fast.
        yield* sleepMicros(slot - now)
        if (mayStart(slot, yield* nowMicros, reservation)) return
      }
    })

    return { acquire, limitPerSecond: options.limitPerSecond } satisfies RateLimiterShape
  })

export const layer = (options: Options): Layer.Layer<RateLimiter> => Layer.effect(RateLimiter, make(options))

export const layerConfig = (options: Config.Config.Wrap<Options>): Layer.Layer<RateLimiter, ConfigError.ConfigError> =>
  Layer.effect(RateLimiter, Effect.flatMap(Config.unwrap(options), make))
