/**
 * The `RateLimiter` port: the global send limit (SPEC §3.2).
 *
 * `acquire` returns when one send may start. Starts are spaced evenly, one
 * every `1 / (limit × (1 − margin))` seconds, across every product and (with
 * Redis) every process: a sliding one-second window at the sender never holds
 * more than `limit` arrivals, even when arrival times jitter by a few
 * milliseconds, and the sustained rate stays within `margin` of the limit.
 * A token bucket that starts full would let `limit` go at once and another
 * `limit` a moment later: up to twice the limit in one sliding second.
 *
 * The engine both adapters share (the spacing, the slots reserved a few at
 * a time, the guard against late starts) is `Slots.ts`; the adapters differ
 * in where the next slot is claimed: this process, or a Redis script.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type { StorageUnavailable } from "../../Domain/Errors.js"
import { rateLimitPerSecond } from "../../Observability/Metrics.js"

export interface RateLimiterShape {
  /** Waits (through `Clock`) until a send may start, and claims that start. */
  readonly acquire: Effect.Effect<void, StorageUnavailable>
  /** The configured limit, in sends per second. */
  readonly limitPerSecond: number
}

export class RateLimiter extends Context.Tag("restock/RateLimiter")<RateLimiter, RateLimiterShape>() {}

/**
 * A limiter that, once built, shows its limit as the gauge
 * `restock_rate_limit_per_second`: what a dashboard draws its sends against,
 * and the line of the console's round chart.
 */
export const announced = <E, R>(limiter: Effect.Effect<RateLimiterShape, E, R>): Effect.Effect<RateLimiterShape, E, R> =>
  Effect.tap(limiter, (built) => Metric.set(rateLimitPerSecond, built.limitPerSecond))

/** How an adapter is configured: the limit, and the share of it kept free. */
export interface Options {
  readonly limitPerSecond: number
  /** The share of the limit kept free for arrival jitter. Default `defaultMargin` (1.5 %, `Slots.ts`). */
  readonly margin?: number | undefined
}
