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
 */
import { Context, type Effect } from "effect"
import type { StorageUnavailable } from "../../Domain/Errors.js"

export interface RateLimiterShape {
  /** Waits (through `Clock`) until a send may start, and claims that start. */
  readonly acquire: Effect.Effect<void, StorageUnavailable>
  /** The configured limit, in sends per second. */
  readonly limitPerSecond: number
}

export class RateLimiter extends Context.Tag("restock/RateLimiter")<RateLimiter, RateLimiterShape>() {}

/**
 * The spacing between two starts, in microseconds. The margin absorbs the
 * jitter between when a send starts here and when it arrives at the sender.
 */
export const spacingMicros = (limitPerSecond: number, margin: number): number =>
  Math.ceil(1_000_000 / (limitPerSecond * (1 - margin)))

/** 1 %: 495/s at the default limit, tolerating 10 ms of arrival jitter per second. */
export const defaultMargin = 0.01
