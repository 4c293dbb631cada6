/**
 * The service's metrics, from Effect's `Metric` API. Labels carry outcomes and
 * statuses only: never a user id.
 */
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"
import type * as MetricKeyType from "effect/MetricKeyType"

const secondsBoundaries = MetricBoundaries.exponential({ start: 0.0005, factor: 2, count: 16 })

/**
 * A metric whose tag is part of its key. `Metric.tagged` joins its tag to the
 * fiber's on every update: a new array, a new key and a registry lookup per
 * update, once or twice per send (about 1 KiB of garbage each, sampled). This
 * key is built once and the metric keeps its registry entry.
 */
const taggedOnce = <Type extends MetricKeyType.MetricKeyType<any, any>>(
  key: MetricKey.MetricKey<Type>,
  tag: string,
  value: string
) => Metric.fromMetricKey(MetricKey.tagged(key, tag, value))

const sendsKey = MetricKey.counter("restock_sends_total", {
  description: "Requests to the sender, by outcome (ok, transient, permanent)",
  incremental: true
})
export const sends = Metric.fromMetricKey(sendsKey)
export const sendsOk = taggedOnce(sendsKey, "outcome", "ok")
export const sendsTransientFailure = taggedOnce(sendsKey, "outcome", "transient")
export const sendsPermanentFailure = taggedOnce(sendsKey, "outcome", "permanent")
export const retries = Metric.counter("restock_send_retries_total", {
  description: "Retries of transient send failures",
  incremental: true
})
export const sendLatency = Metric.histogram(
  "restock_send_duration_seconds",
  secondsBoundaries,
  "Time from a request's start to the sender's answer"
)
export const sendStartLag = Metric.histogram(
  "restock_send_start_lag_seconds",
  secondsBoundaries,
  "Time from a send's start (its sentAt) to its request being handed to the notifier: this process' event loop holding sends up"
)
export const rateLimitWait = Metric.histogram(
  "restock_rate_limit_wait_seconds",
  secondsBoundaries,
  "Time a send waited for the global rate limit"
)
export const rateLimitPerSecond = Metric.gauge("restock_rate_limit_per_second", {
  description: "The configured global send limit (RATE_LIMIT_PER_SECOND)"
})
export const rateLimitSlotsDropped = Metric.counter("restock_rate_limit_slots_dropped_total", {
  description: "Reserved send slots left unused: woken too late for them (a stalled event loop), or left over when sends stopped",
  incremental: true
})
export const roundsFinished = Metric.counter("restock_rounds_finished_total", {
  description: "Rounds that reached a terminal status, by status",
  incremental: true
})
export const roundDuration = Metric.histogram(
  "restock_round_duration_seconds",
  MetricBoundaries.exponential({ start: 0.01, factor: 2, count: 20 }),
  "Time from a round's dispatch start to its terminal status"
)
export const deliveriesRecorded = Metric.counter("restock_deliveries_recorded_total", {
  description: "Delivery records written",
  incremental: true
})
export const sseConnections = Metric.gauge("restock_sse_connections", {
  description: "Open Server-Sent Events streams"
})
const sseEventsKey = MetricKey.counter("restock_sse_events_total", {
  description: "Notification events written to SSE streams, by kind (live, replayed)",
  incremental: true
})
export const sseEventsDelivered = Metric.fromMetricKey(sseEventsKey)
export const sseEventsLive = taggedOnce(sseEventsKey, "kind", "live")
export const sseEventsReplayed = taggedOnce(sseEventsKey, "kind", "replayed")
export const sseSlowClientsDropped = Metric.counter("restock_sse_slow_clients_dropped_total", {
  description: "SSE listeners disconnected because they fell behind",
  incremental: true
})

export const historyRowsPruned = Metric.counter("restock_history_rows_pruned_total", {
  description: "Delivery records deleted by the retention (HISTORY_RETENTION)",
  incremental: true
})
export const historyOldestRecordAge = Metric.gauge("restock_history_oldest_record_age_seconds", {
  description: "Age of the oldest delivery record kept (0 when there is none); above HISTORY_RETENTION plus its pruning delay, records are kept for a resumable round or the pruner is behind"
})

