/**
 * The webhook `Notifier` (SPEC §5): POSTs each notification as JSON to the
 * third-party sender, one request per `send`.
 *
 * - body `{ userId, productId, productName, restockRound, sentAt }` (the
 *   `Notification` schema, `sentAt` as an ISO string), header
 *   `Idempotency-Key: <productId>:<restockRound>:<userId>`;
 * - any 2xx is success; 429, 5xx, network errors and timeouts are `Transient`;
 *   other statuses are `Permanent`;
 * - a 429 or 503 with `Retry-After` sets `retryAfter`.
 *
 * Connections are kept alive in a pool sized for the dispatch's concurrent
 * sends: opening a socket per request would cost a handshake per message
 * (and at 500/s, thousands of sockets in TIME_WAIT).
 */
import { HttpClient, HttpClientRequest, type HttpClientResponse } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import * as Undici from "@effect/platform-node/Undici"
import { Clock, Duration, Effect, Layer, Option, Schema } from "effect"
import { STATUS_CODES } from "node:http"
import { Notification } from "../Domain/Delivery.js"
import { describeCause } from "../Domain/Errors.js"
import { Notifier, type NotifierShape, SendFailed } from "./Notifier.js"

export interface WebhookOptions {
  /** The sender's endpoint. */
  readonly url: URL | string
  /** How long one request may take, response body included (default 10 s). */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * The most sockets kept open to the sender (default 64). Requests beyond
   * that wait for a free socket, so this should exceed the dispatch's number
   * of sends in flight.
   */
  readonly connections?: number | undefined
}

export const defaultTimeout = Duration.seconds(10)
export const defaultConnections = 64

/** How much of a failed response's body goes into the error message. */
const snippetBytes = 200

const encodeNotification = Schema.encodeSync(Notification)

/**
 * The webhook notifier over an `HttpClient` from context (`layer` provides a
 * keep-alive one; a library user may bring their own).
 */
export const make = (options: WebhookOptions): Effect.Effect<NotifierShape, never, HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const url = new URL(options.url)
    const timeout = Duration.decode(options.timeout ?? defaultTimeout)
    // Trace headers describe our internals: they are not the third party's business.
    const client = (yield* HttpClient.HttpClient).pipe(HttpClient.withTracerPropagation(false))

    const send = (notification: Notification): Effect.Effect<void, SendFailed> => {
      const request = HttpClientRequest.post(url).pipe(
        HttpClientRequest.setHeader("Idempotency-Key", notification.idempotencyKey),
        // Sets `Content-Type: application/json`.
        HttpClientRequest.bodyUnsafeJson(encodeNotification(notification))
      )
      return client.execute(request).pipe(
        Effect.flatMap(classify),
        Effect.catchTags({
          RequestError: (error) =>
            Effect.fail(
              new SendFailed({
                // A URL or body we cannot even send would fail the same way every time.
                reason: error.reason === "Transport" ? "Transient" : "Permanent",
                message: `request to the sender failed: ${describeTransportError(error.cause)}`
              })
            ),
          // Not raised by `classify`, which reads the body itself; kept for a custom client.
          ResponseError: (error) =>
            Effect.fail(new SendFailed({ reason: "Transient", message: `reading the sender's response failed: ${describeCause(error.cause)}` }))
        }),
        // Interrupting the request aborts it, which frees its socket.
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new SendFailed({ reason: "Transient", message: `no response from the sender within ${Duration.format(timeout)}` })
        })
      )
    }

    return { send }
  })

/** The webhook notifier with its own keep-alive connection pool. */
export const layer = (options: WebhookOptions): Layer.Layer<Notifier> =>
  Layer.effect(Notifier, make(options)).pipe(
    Layer.provide(NodeHttpClient.layerUndiciWithoutDispatcher),
    Layer.provide(dispatcherLayer(options.connections ?? defaultConnections))
  )

/**
 * An undici agent: keep-alive by default, at most `connections` sockets per
 * origin. Destroyed (in-flight requests aborted) when the layer is released:
 * by then the dispatch has awaited its sends.
 */
const dispatcherLayer = (connections: number) =>
  Layer.scoped(
    NodeHttpClient.Dispatcher,
    Effect.acquireRelease(
      Effect.sync(() => new Undici.Agent({ connections })),
      (agent) => Effect.promise(() => agent.destroy())
    )
  )

/**
 * Reads the whole body first: a connection is reused only once its response
 * is consumed. (Senders answer in a few bytes; reading the body as one buffer
 * cost half as much per request here as streaming it.) A body that breaks off
 * midway still leaves the status to decide: the sender has answered.
 */
const classify = (response: HttpClientResponse.HttpClientResponse): Effect.Effect<void, SendFailed> =>
  Effect.gen(function*() {
    const body = yield* Effect.orElseSucceed(response.arrayBuffer, () => new ArrayBuffer(0))
    const status = response.status
    if (status >= 200 && status < 300) return
    const transient = status === 429 || status >= 500
    const retryAfter = status === 429 || status === 503
      ? yield* retryAfterOf(response)
      : Option.none<Duration.Duration>()
    const reasonPhrase = STATUS_CODES[status]
    const snippet = snippetOf(body)
    const message = [
      `HTTP ${status}${reasonPhrase === undefined ? "" : ` ${reasonPhrase}`}`,
      snippet === "" ? "" : `: ${snippet}`,
      Option.match(retryAfter, { onNone: () => "", onSome: (wait) => ` (retry after ${Duration.format(wait)})` })
    ].join("")
    return yield* Effect.fail(
      new SendFailed({
        reason: transient ? "Transient" : "Permanent",
        message,
        retryAfter: Option.getOrUndefined(retryAfter)
      })
    )
  })

/** The body's first `snippetBytes` as one line of text, for an error message. */
const snippetOf = (body: ArrayBuffer): string => {
  const text = new TextDecoder().decode(body.slice(0, snippetBytes)).replace(/\s+/g, " ").trim()
  return body.byteLength > snippetBytes ? `${text}…` : text
}

const retryAfterOf = (response: HttpClientResponse.HttpClientResponse) =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    const value = response.headers["retry-after"]
    if (value === undefined) return Option.none<Duration.Duration>()
    return parseRetryAfter(value, { responseDate: response.headers["date"], now })
  })

/**
 * `Retry-After` (RFC 9110 §10.2.3): delta-seconds, or an HTTP date. A date
 * is measured from the response's own `Date` header when it has one, so a
 * sender whose clock is off from ours still gets the wait it asked for;
 * otherwise from `now`. A date in the past means "now" (zero). Anything else
 * is ignored (`None`).
 */
export const parseRetryAfter = (
  value: string,
  context: { readonly responseDate?: string | undefined; readonly now: number }
): Option.Option<Duration.Duration> => {
  const trimmed = value.trim()
  if (/^[0-9]+$/.test(trimmed)) return Option.some(Duration.seconds(Number(trimmed)))
  const at = parseHttpDate(trimmed)
  if (at === undefined) return Option.none()
  const from = context.responseDate === undefined ? undefined : parseHttpDate(context.responseDate)
  return Option.some(Duration.millis(Math.max(0, at - (from ?? context.now))))
}

/** An HTTP date (IMF-fixdate, or the obsolete RFC 850 form), in epoch milliseconds. */
const parseHttpDate = (value: string): number | undefined => {
  // Only dates that name their zone as GMT: `Date.parse` reads a zoneless date as local time.
  if (!/\bGMT$/.test(value.trim())) return undefined
  const millis = Date.parse(value)
  return Number.isNaN(millis) ? undefined : millis
}

/** A network error as one line: undici wraps the socket error, whose `code` says most. */
const describeTransportError = (cause: unknown): string => {
  const described = describeCause(cause)
  const inner = typeof cause === "object" && cause !== null && "cause" in cause ? cause.cause : undefined
  const code = (inner ?? cause) as { readonly code?: unknown } | null | undefined
  const codeText = typeof code?.code === "string" ? code.code : undefined
  if (inner !== undefined && inner !== null) {
    const innerText = describeCause(inner)
    return codeText !== undefined && !innerText.includes(codeText) ? `${innerText} (${codeText})` : innerText
  }
  return codeText !== undefined && !described.includes(codeText) ? `${described} (${codeText})` : described
}
