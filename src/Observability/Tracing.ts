/**
 * Spans exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; otherwise nothing is
 * installed and spans stay in-process, costing next to nothing.
 *
 * The variables are the OpenTelemetry SDK's own, read the way its SDKs read
 * them, so an operator's existing collector settings work unchanged.
 */
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import { optionalString, parseUrl } from "../ConfigReaders.js"
import { redactCredentials } from "./Redact.js"

export interface TracingConfig {
  /** Where spans are POSTed: the traces endpoint itself. */
  readonly url: string
  readonly protocol: "http/protobuf" | "http/json"
  readonly headers: Readonly<Record<string, string>>
  readonly serviceName: string
  /** How long spans are gathered before a batch is sent. */
  readonly exportInterval: Duration.Duration
}

const optional = optionalString

const parseEndpoint = (name: string, raw: string): Either.Either<string, ConfigError.ConfigError> =>
  Either.mapBoth(parseUrl(raw.trim(), ["http:", "https:"]), {
    onLeft: (why) => ConfigError.InvalidData([name], why),
    onRight: (url) => url.href
  })

/** `key1=value1,key2=value2`, values percent-encoded (W3C baggage style, as the SDKs read it). */
const parseHeaders = (raw: string): Record<string, string> => {
  const headers: Record<string, string> = {}
  for (const pair of raw.split(",")) {
    const at = pair.indexOf("=")
    if (at <= 0) continue
    headers[pair.slice(0, at).trim().toLowerCase()] = decodeURIComponent(pair.slice(at + 1).trim())
  }
  return headers
}

/** The tracing settings, or `None` when no endpoint is configured. */
export const config: Config.Config<Option.Option<TracingConfig>> = Config.all({
  base: optional("OTEL_EXPORTER_OTLP_ENDPOINT"),
  traces: optional("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
  protocol: optional("OTEL_EXPORTER_OTLP_PROTOCOL"),
  headers: optional("OTEL_EXPORTER_OTLP_HEADERS"),
  serviceName: optional("OTEL_SERVICE_NAME"),
  delay: optional("OTEL_BSP_SCHEDULE_DELAY")
}).pipe(
  Config.mapOrFail(({ base, delay, headers, protocol, serviceName, traces }) => {
    // The traces endpoint is used as given; the general one gets the signal's path appended.
    const url = Option.isSome(traces)
      ? parseEndpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces.value)
      : Option.isSome(base)
      ? Either.map(parseEndpoint("OTEL_EXPORTER_OTLP_ENDPOINT", base.value), (href) => href.replace(/\/+$/, "") + "/v1/traces")
      : undefined
    if (url === undefined) return Either.right(Option.none())
    const chosenProtocol = Option.getOrElse(protocol, () => "http/protobuf").trim()
    if (chosenProtocol !== "http/protobuf" && chosenProtocol !== "http/json") {
      return Either.left(ConfigError.InvalidData(
        ["OTEL_EXPORTER_OTLP_PROTOCOL"],
        `expected "http/protobuf" or "http/json" (gRPC is not supported), got "${chosenProtocol}"`
      ))
    }
    const delayMs = Option.getOrElse(delay, () => "5000").trim()
    if (!/^[0-9]+$/.test(delayMs)) {
      return Either.left(ConfigError.InvalidData(["OTEL_BSP_SCHEDULE_DELAY"], `expected milliseconds, got "${delayMs}"`))
    }
    return Either.map(url, (href) =>
      Option.some({
        url: href,
        protocol: chosenProtocol,
        headers: Option.match(headers, { onNone: () => ({}), onSome: parseHeaders }),
        serviceName: Option.getOrElse(serviceName, () => "restock"),
        exportInterval: Duration.millis(Number(delayMs))
      } satisfies TracingConfig))
  })
)

/**
 * Requests that would only add noise to traces: scrapes, probes and the
 * console's static files. API calls and event streams are still traced.
 */
const untraced = (request: HttpServerRequest.HttpServerRequest): boolean => {
  const path = request.url.split("?")[0]!
  return path === "/" || path === "/metrics" || path.startsWith("/health/") || path.startsWith("/console/") ||
    path.startsWith("/docs")
}

const scrub = (value: unknown): unknown => typeof value === "string" ? redactCredentials(value) : value

/**
 * The HTTP server's spans record the full URL of every request, and the
 * event streams take their token in the URL: every string attribute and
 * event is scrubbed before a span can be exported.
 */
const redacting = (tracer: Tracer.Tracer): Tracer.Tracer =>
  Tracer.make({
    span: (...args) => {
      const span: { -readonly [K in keyof Tracer.Span]: Tracer.Span[K] } = tracer.span(...args)
      const attribute = span.attribute.bind(span)
      const event = span.event.bind(span)
      span.attribute = (key, value) => attribute(key, scrub(value))
      // Log lines become span events: the access log's URL among them.
      span.event = (name, startTime, attributes) =>
        event(
          redactCredentials(name),
          startTime,
          attributes === undefined
            ? undefined
            : Object.fromEntries(Object.entries(attributes).map(([key, value]) => [key, scrub(value)]))
        )
      return span
    },
    context: (f, fiber) => tracer.context(f, fiber)
  })

/**
 * Installs the OTLP tracer for everything built on top of this layer. The
 * exporter's modules are imported here, not at start-up: a service without an
 * endpoint never loads them.
 */
export const layer = (options: TracingConfig): Layer.Layer<never> =>
  Layer.mergeAll(
    Layer.unwrapScoped(Effect.gen(function*() {
      const [OtlpTracer, OtlpSerialization, FetchHttpClient] = yield* Effect.promise(() =>
        Promise.all([
          import("@effect/opentelemetry/OtlpTracer"),
          import("@effect/opentelemetry/OtlpSerialization"),
          import("@effect/platform/FetchHttpClient")
        ])
      )
      return Layer.unwrapScoped(Effect.map(
        OtlpTracer.make({
          url: options.url,
          headers: options.headers,
          resource: { serviceName: options.serviceName },
          exportInterval: options.exportInterval
        }),
        (tracer) => Layer.setTracer(redacting(tracer))
      )).pipe(
        Layer.provide(options.protocol === "http/json" ? OtlpSerialization.layerJson : OtlpSerialization.layerProtobuf),
        Layer.provide(FetchHttpClient.layer)
      )
    })),
    Layer.scopedDiscard(Effect.locallyScoped(HttpMiddleware.currentTracerDisabledWhen, untraced))
  )

/** From the environment: the OTLP tracer when an endpoint is set, nothing otherwise. */
export const layerConfig: Layer.Layer<never, ConfigError.ConfigError> = Layer.unwrapEffect(
  Effect.map(config, Option.match({ onNone: () => Layer.empty, onSome: layer }))
)
