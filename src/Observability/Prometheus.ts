/**
 * The service's metrics in the Prometheus text format: Effect's `Metric`
 * registry read through `@effect/opentelemetry`'s metrics bridge (a
 * `MetricProducer`) by `@opentelemetry/exporter-prometheus`'s reader, and
 * written by its serializer. The exporter's own HTTP server is never started:
 * the service answers `GET /metrics` itself, on its own port.
 */
import * as OtelMetrics from "@effect/opentelemetry/Metrics"
import * as Resource from "@effect/opentelemetry/Resource"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Metrics from "./Metrics.js"
import * as ProcessMetrics from "./ProcessMetrics.js"

export class Prometheus extends Context.Tag("restock/Observability/Prometheus")<Prometheus, {
  /** Every metric of the process, as a Prometheus text exposition. */
  readonly scrape: Effect.Effect<string>
}>() {
  static readonly layer: Layer.Layer<Prometheus> = Layer.scoped(
    Prometheus,
    Effect.gen(function*() {
      const reader = new PrometheusExporter({ preventServerStart: true })
      const producer = yield* OtelMetrics.makeProducer
      yield* OtelMetrics.registerProducer(producer, () => reader)
      const serializer = new PrometheusSerializer()
      const processMetrics = yield* ProcessMetrics.make
      yield* registerSeries
      return {
        scrape: Effect.zipRight(
          processMetrics.sample,
          Effect.promise(() => reader.collect()).pipe(
            Effect.map(({ resourceMetrics }) => canonical(serializer.serialize(resourceMetrics)))
          )
        )
      }
    })
  ).pipe(Layer.provide(Resource.layer({ serviceName: "restock" })))
}

/**
 * The serializer's text, in the shape the Prometheus text format (0.0.4, the
 * content type served) and its parsers expect: without OpenMetrics' `# UNIT`
 * lines (the bridge gives every metric the unit "1"; units are in the names),
 * and with each histogram's buckets before its `_sum` and `_count`, the order
 * every Prometheus client writes (and simpler parsers rely on).
 */
const canonical = (exposition: string): string => {
  const lines: Array<string> = []
  let histogram: { readonly buckets: Array<string>; readonly sums: Array<string>; readonly counts: Array<string> } | undefined
  const flush = () => {
    if (histogram !== undefined) lines.push(...histogram.buckets, ...histogram.sums, ...histogram.counts)
    histogram = undefined
  }
  for (const line of exposition.split("\n")) {
    if (line.startsWith("# UNIT ")) continue
    if (line.startsWith("# HELP ") || line === "") flush()
    if (histogram !== undefined && !line.startsWith("#")) {
      const name = line.split(/[{ ]/, 1)[0]!
      ;(name.endsWith("_bucket") ? histogram.buckets : name.endsWith("_sum") ? histogram.sums : histogram.counts).push(line)
      continue
    }
    lines.push(line)
    if (/^# TYPE \S+ histogram$/.test(line)) histogram = { buckets: [], sums: [], counts: [] }
  }
  flush()
  return lines.join("\n")
}

/**
 * A metric appears in Effect's registry once it is first touched. Reading
 * each series of the service here makes them all show from the first scrape,
 * at 0, so a rate over a scrape range never misses its first increment.
 */
const registerSeries = Effect.all(
  [
    Metrics.sendsOk,
    Metrics.sendsTransientFailure,
    Metrics.sendsPermanentFailure,
    Metrics.retries,
    Metrics.sendLatency,
    Metrics.rateLimitWait,
    ...["COMPLETED", "CANCELED_BY_SOLD_OUT", "CANCELED_BY_ERROR"].map((status) =>
      Metric.tagged(Metrics.roundsFinished, "status", status)
    ),
    Metrics.roundDuration,
    Metrics.deliveriesRecorded,
    Metrics.sseConnections,
    Metrics.sseEventsLive,
    Metrics.sseEventsReplayed,
    Metrics.sseSlowClientsDropped,
    Metrics.historyRowsPruned,
    Metrics.historyOldestRecordAge
  ].map((metric) => Metric.value(metric as Metric.Metric<unknown, never, unknown>)),
  { discard: true }
)
