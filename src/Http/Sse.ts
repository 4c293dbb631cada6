/**
 * Server-Sent Events responses: the encoding (`@effect/experimental`'s
 * encoder), the heartbeat and the headers every stream of the edge shares.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Sse from "@effect/experimental/Sse"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { sseConnections } from "../Observability/Metrics.js"

export interface SseConfigShape {
  /** A `: ping` comment is sent this often, so proxies and clients see the stream is alive. */
  readonly heartbeatInterval: Duration.Duration
  /** Events a connection may hold that its client has not taken yet; past that it is dropped. */
  readonly bufferSize: number
  /** Deliveries read per query when a reconnecting client is replayed its missed notifications. */
  readonly replayPageSize: number
  /** The reconnection delay the `retry:` field asks EventSource clients to wait. */
  readonly retry: Duration.Duration
}

/** Tunables of the SSE streams; the defaults are the service's, tests shorten them. */
export class SseConfig extends Context.Reference<SseConfig>()("restock/Http/SseConfig", {
  defaultValue: (): SseConfigShape => ({
    heartbeatInterval: Duration.seconds(15),
    bufferSize: 1000,
    replayPageSize: 500,
    retry: Duration.seconds(3)
  })
}) {}

/** One SSE event as text: `id`, `event` and `data` lines, then a blank line. */
export const encodeEvent = (event: string, data: unknown, id?: string | number | undefined): string =>
  Sse.encoder.write({
    _tag: "Event",
    event,
    id: id === undefined ? undefined : String(id),
    data: JSON.stringify(data)
  })

/** A comment line: ignored by parsers, but it keeps the connection visibly alive. */
export const ping = ": ping\n\n"

/**
 * Ends every open stream when the edge shuts down: streams never end on their
 * own, and the server cannot close while a response is still open.
 */
export class SseLifetime extends Context.Tag("restock/Http/SseLifetime")<SseLifetime, {
  /** Completes when the edge is shutting down. */
  readonly closing: Effect.Effect<void>
}>() {
  static readonly layer: Layer.Layer<SseLifetime> = Layer.scoped(
    SseLifetime,
    Effect.gen(function*() {
      const closing = yield* Deferred.make<void>()
      yield* Effect.addFinalizer(() => Deferred.succeed(closing, undefined))
      return { closing: Deferred.await(closing) }
    })
  )
}

const headers = {
  "cache-control": "no-cache",
  // A stream is a connection's last response: once it ends (token expiry,
  // slow client, shutdown) the socket closes instead of idling in keep-alive.
  "connection": "close",
  // nginx and friends would otherwise buffer the stream and defeat it.
  "x-accel-buffering": "no"
} as const

/**
 * A `text/event-stream` response of `events` (already encoded), opened by a
 * `retry:` field, with a `: ping` comment every `heartbeatInterval` (through
 * `Clock`). It ends when `events` ends or the edge shuts down.
 */
export const response = (
  events: Stream.Stream<string>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, SseLifetime> =>
  Effect.zipWith(SseConfig, SseLifetime, (config, lifetime) => {
    const heartbeat = Stream.fromSchedule(Schedule.spaced(config.heartbeatInterval)).pipe(Stream.as(ping))
    // The first bytes go out at once: a client learns the stream is open
    // without waiting for the first event or ping.
    const opening = Sse.encoder.write(new Sse.Retry({ duration: config.retry, lastEventId: undefined }))
    const body = Stream.succeed(opening).pipe(
      Stream.concat(Stream.merge(events, heartbeat, { haltStrategy: "left" })),
      Stream.interruptWhen(lifetime.closing),
      Stream.encodeText,
      // Counted while the body is being written: from the first byte to the end of the stream.
      (stream) =>
        Stream.unwrapScoped(Effect.as(
          Effect.acquireRelease(Metric.increment(sseConnections), () => Metric.modify(sseConnections, -1)),
          stream
        ))
    )
    return HttpServerResponse.stream(body, { contentType: "text/event-stream", headers })
  })

/**
 * Drops the connection of the current request at once, for a client too far
 * behind to be worth waiting for: a graceful end would wait for the client to
 * read what is already queued. It reconnects with `Last-Event-ID` and is
 * replayed what it missed.
 */
export const dropConnection: Effect.Effect<void, never, HttpServerRequest.HttpServerRequest> = Effect.flatMap(
  HttpServerRequest.HttpServerRequest,
  (request) =>
    Effect.sync(() => {
      try {
        NodeHttpServerRequest.toServerResponse(request).destroy()
      } catch {
        // Not served by Node: ending the stream is all that can be done.
      }
    })
)

/** How an SSE endpoint's success reads in `/openapi.json`. */
export const eventStream = (description: string) =>
  HttpApiSchema.Text({ contentType: "text/event-stream" }).annotations({ description })
