/**
 * Server-Sent Events responses: the encoding (`@effect/experimental`'s
 * encoder), the registry of open streams with the timer they share
 * (heartbeat, token expiry) and their end at shutdown, and the headers every
 * stream of the edge shares. Each stream's way out is an `SseChannel`.
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
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { sseConnections } from "../Observability/Metrics.js"
import { type Expiry, ExpiryLine } from "./ExpiryLine.js"
import { SseChannel } from "./SseChannel.js"

export interface SseConfigShape {
  /** A `: ping` comment is sent this often, so proxies and clients see the stream is alive. */
  readonly heartbeatInterval: Duration.Duration
  /** Bytes a connection may hold that its client has not taken yet; past that it is dropped. */
  readonly bufferBytes: number
  /**
   * Live deliveries a user stream holds while its replay runs, and how many
   * of the replay's ids it remembers to skip their live duplicates.
   */
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
    bufferBytes: 256 * 1024,
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

export interface OpenStreamsShape {
  /**
   * Opens a channel for the current request's stream, counted until it
   * closes: it gets the shared `: ping`s, ends at `closesAt` (the Clock's
   * epoch ms) when given, and ends when the edge shuts down.
   */
  readonly open: (options: {
    readonly closesAt?: number | undefined
    /** Runs when the client fell more than the byte bound behind (it is then dropped). */
    readonly onOverflow: () => void
  }) => SseChannel
}

/**
 * Every open SSE stream of the edge, and the one timer they share: a `: ping`
 * to each every `heartbeatInterval`, and each user stream's end when its
 * token expires — one fiber sleeping (through `Clock`) until the next of
 * these, instead of a timer and a fiber per stream. On shutdown every stream
 * ends (streams never end on their own, and the server cannot close while a
 * response is still open).
 */
export class OpenStreams extends Context.Tag("restock/Http/OpenStreams")<OpenStreams, OpenStreamsShape>() {
  static readonly layer: Layer.Layer<OpenStreams> = Layer.scoped(
    OpenStreams,
    Effect.gen(function*() {
      const config = yield* SseConfig
      const clock = yield* Effect.clock
      const intervalMillis = Duration.toMillis(config.heartbeatInterval)
      const open = new Set<SseChannel>()
      const expiries = new ExpiryLine()
      let closing = false
      let plannedWake = Number.POSITIVE_INFINITY
      let rescheduled: Deferred.Deferred<void> | undefined

      const timer = Effect.gen(function*() {
        let nextPing = clock.unsafeCurrentTimeMillis() + intervalMillis
        while (true) {
          // Made before the wake is planned, with nothing that yields between the two: a stream
          // opened at any moment after this either finds its expiry planned or wakes the timer.
          const wake = yield* Deferred.make<void>()
          rescheduled = wake
          const now = clock.unsafeCurrentTimeMillis()
          if (now >= nextPing) {
            for (const channel of open) channel.send(ping)
            nextPing = now + intervalMillis
          }
          while (expiries.earliest !== undefined && expiries.earliest.at <= now) expiries.pop()!.channel?.finish()
          plannedWake = Math.min(nextPing, expiries.earliest?.at ?? Number.POSITIVE_INFINITY)
          yield* Effect.raceFirst(clock.sleep(Duration.millis(plannedWake - now)), Deferred.await(wake))
        }
      })
      yield* Effect.forkScoped(timer)
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          closing = true
          for (const channel of open) channel.finish()
        })
      )

      // The first bytes of every stream, queued as it opens (before anything else can be): a
      // client learns the stream is open without waiting for the first event or ping.
      const opening = Sse.encoder.write(new Sse.Retry({ duration: config.retry, lastEventId: undefined }))

      return {
        open: ({ closesAt, onOverflow }) => {
          const channel = new SseChannel(config.bufferBytes, onOverflow)
          channel.send(opening)
          if (closing) {
            channel.finish()
            return channel
          }
          const expiry: Expiry | undefined = closesAt === undefined ? undefined : { at: closesAt, channel }
          open.add(channel)
          sseConnections.unsafeModify(1, [])
          channel.once("close", () => {
            open.delete(channel)
            if (expiry !== undefined) expiry.channel = undefined
            sseConnections.unsafeModify(-1, [])
          })
          if (expiry !== undefined) {
            expiries.push(expiry)
            if (expiry.at < plannedWake && rescheduled !== undefined) Deferred.unsafeDone(rescheduled, Effect.void)
          }
          return channel
        }
      }
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

/** The `text/event-stream` response whose body is `channel`. */
export const responseOf = (channel: SseChannel): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.raw(channel, { contentType: "text/event-stream", headers })

/**
 * A `text/event-stream` response of `events` (already encoded), written at
 * the client's pace by a fiber of the request's scope; it ends when `events`
 * ends or the edge shuts down. For the few streams whose events come from a
 * `Stream` (the admin's progress); the user stream writes its channel in place.
 */
export const response = (
  events: Stream.Stream<string>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, OpenStreams | HttpServerRequest.HttpServerRequest | Scope.Scope> =>
  Effect.gen(function*() {
    const streams = yield* OpenStreams
    const request = yield* HttpServerRequest.HttpServerRequest
    const channel = streams.open({ onOverflow: () => dropConnectionOf(request) })
    yield* Stream.runForEachWhile(events, (event) => Effect.as(channel.ready, channel.send(event))).pipe(
      Effect.ensuring(Effect.sync(() => channel.finish())),
      Effect.forkScoped
    )
    return responseOf(channel)
  })

/**
 * Drops the connection of the current request at once, for a client too far
 * behind to be worth waiting for: a graceful end would wait for the client to
 * read what is already queued. It reconnects with `Last-Event-ID` and is
 * replayed what it missed.
 */
export const dropConnectionOf = (request: HttpServerRequest.HttpServerRequest): void => {
  try {
    NodeHttpServerRequest.toServerResponse(request).destroy()
  } catch {
    // Not served by Node: ending the stream is all that can be done.
  }
}

/** How an SSE endpoint's success reads in `/openapi.json`. */
export const eventStream = (description: string) =>
  HttpApiSchema.Text({ contentType: "text/event-stream" }).annotations({ description })
