/**
 * The notifier as the dispatch uses it: every request counted where it
 * leaves, retries included, by outcome, and timed (Clock time) from its start
 * to the sender's answer.
 */
import * as Effect from "effect/Effect"
import type { NotifierShape } from "../Notifier/Notifier.js"
import * as Metrics from "../Observability/Metrics.js"

export const instrument = (notifier: NotifierShape): NotifierShape => ({
  send: (notification) =>
    Effect.clockWith((clock) => {
      const start = clock.unsafeCurrentTimeNanos()
      // Not `Clock.currentTimeNanos`: it throws under `TestClock` once virtual time holds a fraction of a millisecond.
      const seconds = () => Number(clock.unsafeCurrentTimeNanos() - start) / 1e9
      // Metrics updated in place (no metric labels are set on fibers here): one step per
      // outcome instead of two metric effects on every send.
      return Effect.tapBoth(notifier.send(notification), {
        onFailure: (failure) =>
          Effect.sync(() => {
            Metrics.sendLatency.unsafeUpdate(seconds(), [])
            const counter = failure.reason === "Permanent" ? Metrics.sendsPermanentFailure : Metrics.sendsTransientFailure
            counter.unsafeUpdate(1, [])
          }),
        onSuccess: () =>
          Effect.sync(() => {
            Metrics.sendLatency.unsafeUpdate(seconds(), [])
            Metrics.sendsOk.unsafeUpdate(1, [])
          })
      })
    })
})
