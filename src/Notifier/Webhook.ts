/**
 * The webhook `Notifier` (SPEC §5): POSTs each notification as JSON to the
 * third-party sender, one request per `send`.
 *
 * - body `{ userId, productId, productName, restockRound, sentAt,
 *   unsubscribeUrl }` (the `Notification` schema, `sentAt` as an ISO
 *   string), header
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
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { STATUS_CODES } from "node:http"
import type * as Scope from "effect/Scope"
import type { Notification } from "../Domain/Delivery.js"
import { describeCause } from "../Domain/Errors.js"
import * as Deadlines from "./Deadlines.js"
import type { Deadlines as DeadlinesShape, Timed } from "./Deadlines.js"
import { type Abort, Notifier, type NotifierShape, SendFailed, sendVia } from "./Notifier.js"

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
  /** The body's first bytes (up to one more than `snippetBytes`): only failures keep them. */
  readonly body: Uint8Array
}

/**
 * One request and its answer, as undici's dispatch handler and as a deadline
 * of the notifier's `Deadlines`: it settles once, with the response, a
 * transport error, its timeout or its interruption, whichever comes first.
 */
class Exchange implements Undici.Dispatcher.DispatchHandler, Timed {
  settled = false
  private status = 0
  private headers: Answer["headers"] = {}
  private kept: Array<Buffer> | undefined
  private keptBytes = 0
  private controller: Undici.Dispatcher.DispatchController | undefined
  private abortedWith: Error | undefined

  constructor(
    readonly deadline: number,
    private readonly timeout: Duration.Duration,
    private readonly deadlines: DeadlinesShape,
    private readonly done: (outcome: Exit.Exit<void, SendFailed>) => void
  ) {}

  onRequestStart(controller: Undici.Dispatcher.DispatchController) {
    this.controller = controller
    if (this.abortedWith !== undefined) controller.abort(this.abortedWith)
  }

  onResponseStart(_controller: Undici.Dispatcher.DispatchController, statusCode: number, headers: Answer["headers"]) {
    if (statusCode < 200) return // 1xx: the answer is still to come
    this.status = statusCode
    this.headers = headers
    if (statusCode >= 300) this.kept = []
  }

  onResponseData(_controller: Undici.Dispatcher.DispatchController, chunk: Buffer) {
    // The body is read to its end (a connection is reused only then) but kept only for a failure's message.
    if (this.kept !== undefined && this.keptBytes <= snippetBytes) {
      this.kept.push(chunk)
      this.keptBytes += chunk.byteLength
    }
  }

  onResponseEnd() {
    this.settle(this.answered())
  }

  onResponseError(_controller: Undici.Dispatcher.DispatchController | undefined, error: Error) {
    // A body that breaks off midway still leaves the status to decide.
    this.settle(
      this.status !== 0
        ? this.answered()
        : new SendFailed({ reason: "Transient", message: `request to the sender failed: ${describeTransportError(error)}` })
    )
  }

  // Settled before the abort: aborting calls `onResponseError` at once, which must find it settled.
  expire() {
    this.settle(
      new SendFailed({ reason: "Transient", message: `no response from the sender within ${Duration.format(this.timeout)}` })
    )
    this.abort(new Error("timed out"))
  }

  /** Interrupted: the request is aborted, which frees its socket. */
  interrupt() {
    this.settled = true
    this.deadlines.settled()
    this.abort(new Error("interrupted"))
  }

  private abort(reason: Error) {
    this.abortedWith = reason
    this.controller?.abort(reason)
  }

  private answered(): SendFailed | undefined {
    if (this.status >= 200 && this.status < 300) return undefined
    return failureOf({
      status: this.status,
      headers: this.headers,
      body: this.kept === undefined ? new Uint8Array(0) : Buffer.concat(this.kept)
    }, this.deadlines.now())
  }

  private settle(failure: SendFailed | undefined) {
    if (this.settled) return
    this.settled = true
    this.deadlines.settled()
    this.done(failure === undefined ? Exit.void : Exit.fail(failure))
  }
}

/**
 * The webhook notifier over an undici dispatcher (`layer` provides a
 * keep-alive agent). undici is driven directly rather than through the
 * platform's `HttpClient`: at the default limit this is the hottest path of
 * the service, and the direct request costs a quarter of the CPU. Directly
 * means its dispatch API, one handler object per request, not `request`
 * (which adds a promise, an abort signal and a readable stream for the body
 * per request), and one timer for every request's timeout (`Deadlines`)
 * instead of `Effect.timeoutFail`'s fiber and race per request. Measured in
 * one run of the `rate` bench: 0.71 → 0.45 ms CPU per POST, where plain
 * undici's `request` took 0.56 (bench/README.md, "the webhook's send path").
 * It answers through `start`'s callback; `send`, its effect form, is for
 * callers that want one (the dispatch's retries).
 */
export const make = (options: WebhookOptions, dispatcher: Undici.Dispatcher): Effect.Effect<NotifierShape, never, Scope.Scope> =>
  Effect.map(Deadlines.make, (deadlines) => {
    const url = new URL(options.url)
    const origin = url.origin
    const path = `${url.pathname}${url.search}`
    const timeout = Duration.decode(options.timeout ?? defaultTimeout)
    const timeoutMillis = Duration.toMillis(timeout)

    const start = (notification: Notification, done: (outcome: Exit.Exit<void, SendFailed>) => void): Abort => {
      const exchange = new Exchange(deadlines.now() + timeoutMillis, timeout, deadlines, done)
      deadlines.track(exchange)
      dispatcher.dispatch({
        origin,
        path,
        method: "POST",
        headers: ["content-type", "application/json", "idempotency-key", notification.idempotencyKey],
        // Written out rather than through the schema's encoder, which cost a quarter of a
        // millisecond per request; the webhook test checks the body field by field.
        body: JSON.stringify({
          userId: notification.userId,
          productId: notification.productId,
          productName: notification.productName,
          restockRound: notification.restockRound,
          sentAt: notification.sentAt.toISOString(),
          unsubscribeUrl: notification.unsubscribeUrl
        })
      }, exchange)
      return () => exchange.interrupt()
    }

    return { start, send: sendVia(start) }
  })

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
    ).pipe(Effect.flatMap((agent) => make(options, agent)))
  )

/** The failure a non-2xx answer is, `now` (the Clock's epoch milliseconds) dating its `Retry-After`. */
const failureOf = (answer: Answer, now: number): SendFailed => {
  const status = answer.status
  const transient = status === 429 || status >= 500
  const retryAfter = status === 429 || status === 503 ? retryAfterOf(answer, now) : Option.none<Duration.Duration>()
  const reasonPhrase = STATUS_CODES[status]
  const snippet = snippetOf(answer.body)
  const message = [
    `HTTP ${status}${reasonPhrase === undefined ? "" : ` ${reasonPhrase}`}`,
    snippet === "" ? "" : `: ${snippet}`,
    Option.match(retryAfter, { onNone: () => "", onSome: (wait) => ` (retry after ${Duration.format(wait)})` })
  ].join("")
  return new SendFailed({
    reason: transient ? "Transient" : "Permanent",
    message,
    retryAfter: Option.getOrUndefined(retryAfter)
  })
}

/** The body's first `snippetBytes` as one line of text, for an error message. */
const snippetOf = (body: Uint8Array): string => {
  const text = new TextDecoder().decode(body.slice(0, snippetBytes)).replace(/\s+/g, " ").trim()
  return body.byteLength > snippetBytes ? `${text}…` : text
}

const headerOf = (answer: Answer, name: string): string | undefined => {
  const value = answer.headers[name]
  return typeof value === "string" ? value : value?.[0]
}

const retryAfterOf = (answer: Answer, now: number): Option.Option<Duration.Duration> => {
  const value = headerOf(answer, "retry-after")
  if (value === undefined) return Option.none()
  return parseRetryAfter(value, { responseDate: headerOf(answer, "date"), now })
}

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
