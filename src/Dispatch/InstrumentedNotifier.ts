/**
 * The notifier as the dispatch uses it: every request counted where it
 * leaves, retries included, by outcome, and timed (Clock time) from its start
 * to the sender's answer.
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type { NotifierShape } from "../Notifier/Notifier.js"
import * as Metrics from "../Observability/Metrics.js"

export const instrument = (notifier: NotifierShape): NotifierShape => ({
  send: (notification) =>
    Effect.clockWith((clock) => {
      const start = clock.unsafeCurrentTimeNanos()
      // Not `Clock.currentTimeNanos`: it throws under `TestClock` once virtual time holds a fraction of a millisecond.
      const seconds = () => Number(clock.unsafeCurrentTimeNanos() - start) / 1e9
      return Effect.tapBoth(notifier.send(notification), {
        onFailure: (failure) =>
          Effect.zipRight(
            Metric.update(Metrics.sendLatency, seconds()),
            Metric.increment(failure.reason === "Permanent" ? Metrics.sendsPermanentFailure : Metrics.sendsTransientFailure)
          ),
        onSuccess: () => Effect.zipRight(Metric.update(Metrics.sendLatency, seconds()), Metric.increment(Metrics.sendsOk))
      })
    })
})
