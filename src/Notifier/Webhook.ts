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
import * as Undici from "undici"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { STATUS_CODES } from "node:http"
import type { Notification } from "../Domain/Delivery.js"
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


/** What the sender answered: all that classifying a response needs. */
interface Answer {
  readonly status: number
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  readonly body: Uint8Array
}

/**
 * The webhook notifier over an undici dispatcher (`layer` provides a
 * keep-alive agent). undici is driven directly rather than through the
 * platform's `HttpClient`: at the default limit this is the hottest path of
 * the service, and the direct request costs a quarter of the CPU.
 */
export const make = (options: WebhookOptions, dispatcher: Undici.Dispatcher): NotifierShape => {
  const url = new URL(options.url)
  const path = `${url.pathname}${url.search}`
  const timeout = Duration.decode(options.timeout ?? defaultTimeout)

  const post = (notification: Notification, signal: AbortSignal): Promise<Answer> =>
    dispatcher.request({
      origin: url.origin,
      path,
      method: "POST",
      headers: {
        "content-type": "application/json",
        "idempotency-key": notification.idempotencyKey
      },
      // Written out rather than through the schema's encoder, which cost a quarter of a
      // millisecond per request; the webhook test checks the body field by field.
      body: JSON.stringify({
        userId: notification.userId,
        productId: notification.productId,
        productName: notification.productName,
        restockRound: notification.restockRound,
        sentAt: notification.sentAt.toISOString()
      }),
      signal
    }).then(async (response) => {
      // Read the whole body: a connection is reused only once its response is consumed.
      // A body that breaks off midway still leaves the status to decide.
      const body = await response.body.bytes().catch(() => new Uint8Array(0))
      return { status: response.statusCode, headers: response.headers, body }
    })

  const send = (notification: Notification): Effect.Effect<void, SendFailed> =>
    Effect.tryPromise({
      // Interrupting the request aborts it, which frees its socket.
      try: (signal) => post(notification, signal),
      catch: (cause) =>
        new SendFailed({ reason: "Transient", message: `request to the sender failed: ${describeTransportError(cause)}` })
    }).pipe(
      Effect.flatMap(classify),
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () =>
          new SendFailed({ reason: "Transient", message: `no response from the sender within ${Duration.format(timeout)}` })
      })
    )

  return { send }
}

/**
 * The webhook notifier with its own keep-alive agent: at most `connections`
 * sockets to the sender, destroyed (in-flight requests aborted) when the
 * layer is released — by then the dispatch has awaited its sends.
 */
export const layer = (options: WebhookOptions): Layer.Layer<Notifier> =>
  Layer.scoped(
    Notifier,
    Effect.acquireRelease(
      Effect.sync(() => new Undici.Agent({ connections: options.connections ?? defaultConnections })),
      (agent) => Effect.promise(() => agent.destroy())
    ).pipe(Effect.map((agent) => make(options, agent)))
  )

const classify = (answer: Answer): Effect.Effect<void, SendFailed> =>
  Effect.gen(function*() {
    const status = answer.status
    if (status >= 200 && status < 300) return
    const transient = status === 429 || status >= 500
    const retryAfter = status === 429 || status === 503
      ? yield* retryAfterOf(answer)
      : Option.none<Duration.Duration>()
    const reasonPhrase = STATUS_CODES[status]
    const snippet = snippetOf(answer.body)
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
const snippetOf = (body: Uint8Array): string => {
  const text = new TextDecoder().decode(body.slice(0, snippetBytes)).replace(/\s+/g, " ").trim()
  return body.byteLength > snippetBytes ? `${text}…` : text
}

const headerOf = (answer: Answer, name: string): string | undefined => {
  const value = answer.headers[name]
  return typeof value === "string" ? value : value?.[0]
}

const retryAfterOf = (answer: Answer) =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    const value = headerOf(answer, "retry-after")
    if (value === undefined) return Option.none<Duration.Duration>()
    return parseRetryAfter(value, { responseDate: headerOf(answer, "date"), now })
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
