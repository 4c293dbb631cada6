/**
 * The retry policy around `Notifier.send` (SPEC §3.2, §3.4, §5).
 *
 * - Every attempt reaches the sender, so every attempt first claims a start
 *   from the `RateLimiter`: retries count against the global limit.
 * - `Transient` failures are retried up to `retries` times, after an
 *   exponential backoff with jitter (about 100 ms, 200 ms, 400 ms … capped at
 *   2 s): a sender that keeps failing ends the send within seconds.
 * - A `Retry-After` is honoured: the next attempt starts no sooner. One
 *   longer than `maxRetryAfter` (30 s) is not waited out: the send fails then,
 *   rather than hold a round, its place in the order and a slot of sends in
 *   flight for that long.
 * - `Permanent` failures are not retried.
 *
 * Every wait is `Effect.sleep`, so `TestClock` drives it.
 *
 * The dispatch claims the first attempt's start itself, in subscription
 * order, before it checks the stock and forks the send (SPEC §3.1, §3.3):
 * hence `makeAttemptThenRetry`, which assumes that first start was claimed.
 *
 * A recursion rather than `Effect.retry` with a `Schedule`: the retry runs on
 * every send, and `Effect.retry` makes a schedule driver (a `Ref` and its
 * state) for every run, failing or not; here a send that succeeds at once
 * costs one `catchTag`. The recursion also keeps in one place what a schedule
 * would split between its delay and the retried effect: each retry claims a
 * start after its wait, and the give-up message counts the attempts.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import type { Notification } from "../Domain/Delivery.js"
import type { StorageUnavailable } from "../Domain/Errors.js"
import { type NotifierShape, SendFailed } from "../Notifier/Notifier.js"
import type { RateLimiterShape } from "./RateLimiter/RateLimiter.js"

/** The first retry's nominal backoff; each next one doubles. */
export const baseBackoff = Duration.millis(100)
/** No backoff is longer than this. */
export const maxBackoff = Duration.seconds(2)
/** A `Retry-After` longer than this fails the send instead of being waited out. */
export const maxRetryAfter = Duration.seconds(30)

/** What a retry is about to do: for metrics and logs. */
export interface RetryInfo {
  readonly notification: Notification
  /** The attempt that just failed (1 for the first). */
  readonly attempt: number
  readonly failure: SendFailed
  /** How long before the next attempt claims its start from the rate limiter. */
  readonly delay: Duration.Duration
}

export interface SendPolicyOptions {
  /** Retries of a transient failure (`NOTIFIER_RETRIES`): at most `retries + 1` attempts. */
  readonly retries: number
  /** Runs before each retry's backoff. */
  readonly onRetry?: ((info: RetryInfo) => Effect.Effect<void>) | undefined
}

/** A notification the sender accepted. */
export interface Sent {
  /** How many requests it took (1 when the first succeeded). */
  readonly attempts: number
}

/**
 * The nominal backoff before retry `retry` (1-based): 100 ms, 200 ms, 400 ms,
 * … capped at 2 s. The actual wait is jittered down to between half of it and
 * all of it ("equal jitter"), so failing sends of many rounds do not retry in
 * lockstep, while the wait stays bounded above by the cap.
 */
export const nominalBackoff = (retry: number): Duration.Duration =>
  Duration.min(Duration.times(baseBackoff, 2 ** Math.min(retry - 1, 30)), maxBackoff)

const jitteredBackoff = (retry: number): Effect.Effect<Duration.Duration> => {
  const nominal = Duration.toMillis(nominalBackoff(retry))
  // Whole milliseconds: fractions below that buy nothing and blur virtual-time tests.
  return Effect.map(Random.next, (fraction) => Duration.millis(Math.round(nominal / 2 + (nominal / 2) * fraction)))
}

const plural = (count: number) => (count === 1 ? "1 attempt" : `${count} attempts`)

/**
 * The policy over one notifier and limiter, built once: what a round runs per
 * send, without looking either up in the context each time.
 *
 * `attemptThenRetry(notification)` sends it, assuming the caller already
 * claimed the first attempt's start from the limiter; each retry claims its
 * own. `retryAfter(notification, attempt, failure)` goes on from a failed
 * attempt made elsewhere (the dispatch makes its first attempts through the
 * notifier's callback, and comes here only when one fails). Both fail with
 * the last `SendFailed` (its message says how many attempts were made), or
 * with the limiter's `StorageUnavailable`.
 */
export const makeRetryPolicy = (
  services: { readonly notifier: NotifierShape; readonly limiter: RateLimiterShape },
  options: SendPolicyOptions
) => {
  const { limiter, notifier } = services

  const giveUp = (attempt: number, failure: SendFailed, why: string) =>
    new SendFailed({
      reason: failure.reason,
      message: `sender failed after ${plural(attempt)}${why}: ${failure.message}`,
      retryAfter: failure.retryAfter
    })

  const retryAfter = (
    notification: Notification,
    attempt: number,
    failure: SendFailed
  ): Effect.Effect<Sent, SendFailed | StorageUnavailable> =>
    Effect.gen(function*() {
      if (failure.reason === "Permanent" || attempt > options.retries) {
        return yield* Effect.fail(giveUp(attempt, failure, ""))
      }
      const wait = failure.retryAfter
      if (wait !== undefined && Duration.greaterThan(wait, maxRetryAfter)) {
        return yield* Effect.fail(
          giveUp(attempt, failure, ` (it asked to wait ${Duration.format(wait)}, more than ${Duration.format(maxRetryAfter)})`)
        )
      }
      const backoff = yield* jitteredBackoff(attempt)
      const delay = wait === undefined ? backoff : Duration.max(backoff, wait)
      if (options.onRetry !== undefined) {
        yield* options.onRetry({ notification, attempt, failure, delay })
      }
      yield* Effect.sleep(delay)
      yield* limiter.acquire
      return yield* attemptFrom(notification, attempt + 1)
    })

  const attemptFrom = (notification: Notification, attempt: number): Effect.Effect<Sent, SendFailed | StorageUnavailable> =>
    notifier.send(notification).pipe(
      Effect.as<Sent>({ attempts: attempt }),
      Effect.catchTag("SendFailed", (failure) => retryAfter(notification, attempt, failure))
    )

  return { attemptThenRetry: (notification: Notification) => attemptFrom(notification, 1), retryAfter }
}

/** `makeRetryPolicy`'s `attemptThenRetry` alone. */
export const makeAttemptThenRetry = (
  services: { readonly notifier: NotifierShape; readonly limiter: RateLimiterShape },
  options: SendPolicyOptions
): (notification: Notification) => Effect.Effect<Sent, SendFailed | StorageUnavailable> =>
  makeRetryPolicy(services, options).attemptThenRetry
