/**
 * The notifier as the dispatch uses it: every request counted where it
 * leaves, retries included, by outcome, and timed (Clock time) from its start
 * to the sender's answer. `countAnswer` is that count for a request made
 * through the notifier's callback; `instrument` wraps its effect form.
 */
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { NotifierShape, SendFailed } from "../Notifier/Notifier.js"
import * as Metrics from "../Observability/Metrics.js"

/**
 * Counts one answer (`undefined` for success) of a request that left at
 * `startNanos` of `clock`. Metrics updated in place (no metric labels are set
 * on fibers here): no effect steps per send.
 */
export const countAnswer = (clock: Clock.Clock, startNanos: bigint, failure: SendFailed | undefined): void => {
  // Not `Clock.currentTimeNanos`: it throws under `TestClock` once virtual time holds a fraction of a millisecond.
  Metrics.sendLatency.unsafeUpdate(Number(clock.unsafeCurrentTimeNanos() - startNanos) / 1e9, [])
  const counter = failure === undefined
    ? Metrics.sendsOk
    : failure.reason === "Permanent"
    ? Metrics.sendsPermanentFailure
    : Metrics.sendsTransientFailure
  counter.unsafeUpdate(1, [])
}

export const instrument = (notifier: NotifierShape): NotifierShape => ({
  send: (notification) =>
    Effect.clockWith((clock) => {
      const start = clock.unsafeCurrentTimeNanos()
      return Effect.tapBoth(notifier.send(notification), {
        onFailure: (failure) => Effect.sync(() => countAnswer(clock, start, failure)),
        onSuccess: () => Effect.sync(() => countAnswer(clock, start, undefined))
      })
    })
})
