/**
 * What the edge answers when a request never reaches a handler's logic: a
 * body that is too large or not JSON, input that does not match the schema,
 * a route that does not exist, or a defect. Every answer is JSON
 * `{ _tag, message }` like the errors handlers fail with (SPEC §4).
 */
import {
  type HttpApp,
  HttpApiError,
  HttpIncomingMessage,
  HttpServerError,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { Cause, Effect, Option, Schema } from "effect"
import { BadRequest, InternalError, NotFound, PayloadTooLarge, UnsupportedMediaType } from "./Errors.js"

/** Request bodies are small JSON documents; 64 KiB is far beyond any of them. */
export const maxBodyBytes = 64 * 1024

const respond = <A, I>(schema: Schema.Schema<A, I>, status: number, error: A) =>
  HttpServerResponse.json(Schema.encodeSync(schema)(error), { status }).pipe(Effect.orDie)

const badRequest = (error: BadRequest) => respond(BadRequest, 400, error)

/**
 * One line per offending field, the first problem of each: Schema reports
 * every branch it tried (`Expected undefined` for an optional field), which
 * says nothing useful to a client.
 */
export const describeDecodeError = (error: HttpApiError.HttpApiDecodeError): BadRequest => {
  const seen = new Set<string>()
  const issues: Array<{ path: Array<string>; message: string }> = []
  for (const issue of error.issues) {
    const path = issue.path.map(String)
    const key = path.join(".")
    if (seen.has(key)) continue
    seen.add(key)
    issues.push({ path, message: issue.message.replace(" (Encoded side)", "") })
  }
  const message = issues
    .map(({ message, path }) => `${path.length === 0 ? "request body" : path.join(".")}: ${message}`)
    .join("; ")
  return new BadRequest({ message: `invalid request: ${message}`, issues })
}

const isRequestError = (u: unknown): u is HttpServerError.RequestError =>
  HttpServerError.isServerError(u) && u._tag === "RequestError"

/** The body reader fails with this when `MaxBodySize` is exceeded. */
const isBodyTooLarge = (error: HttpServerError.RequestError): boolean =>
  error.cause instanceof Error && error.cause.message === "maxBytes exceeded"

const tooLarge = respond(
  PayloadTooLarge,
  413,
  new PayloadTooLarge({ message: `the request body exceeds ${maxBodyBytes} bytes`, maxBytes: maxBodyBytes })
)

const answer = (cause: Cause.Cause<unknown>) =>
  Effect.gen(function*() {
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
      const error = failure.value
      if (error instanceof HttpApiError.HttpApiDecodeError) return yield* badRequest(describeDecodeError(error))
      if (HttpServerError.isServerError(error) && error._tag === "RouteNotFound") {
        const request = yield* HttpServerRequest.HttpServerRequest
        return yield* respond(
          NotFound,
          404,
          new NotFound({ message: `no route for ${request.method} ${request.url.split("?")[0]}` })
        )
      }
      // A typed error of an endpoint: the API encodes it with its status.
      return yield* Effect.failCause(cause)
    }
    const defect = Cause.dieOption(cause)
    if (Option.isSome(defect)) {
      const error = defect.value
      // The platform reads bodies with `orDie`: its read errors arrive as defects.
      if (isRequestError(error) && error.reason === "Decode") {
        if (isBodyTooLarge(error)) return yield* tooLarge
        return yield* badRequest(
          new BadRequest({ message: `the request body is not valid JSON: ${describeCause(error.cause)}` })
        )
      }
      yield* Effect.logError("unexpected error", cause)
      return yield* respond(InternalError, 500, new InternalError({ message: "unexpected server error" }))
    }
    // Interruption: the client went away, nobody is listening.
    return yield* Effect.failCause(cause)
  })

const describeCause = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

/**
 * Every body of the API is JSON. Left alone, a body sent as text or form data
 * (curl's `-d` default) would be read as such and fail the schema with a
 * baffling message; this says what is wrong.
 */
const notJson = (request: HttpServerRequest.HttpServerRequest): boolean => {
  const hasBody = Number(request.headers["content-length"] ?? "0") > 0 ||
    request.headers["transfer-encoding"] !== undefined
  const contentType = request.headers["content-type"]
  return hasBody && contentType !== undefined && !/^application\/([\w.+-]+\+)?json\b/i.test(contentType.trim())
}

const unsupportedMediaType = respond(
  UnsupportedMediaType,
  415,
  new UnsupportedMediaType({ message: "request bodies are JSON: send Content-Type: application/json" })
)

/** Bounds request bodies, then renders the failures above as JSON. */
export const requestGuard = <E, R>(
  app: HttpApp.Default<E, R>
): HttpApp.Default<E, R> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const declared = Number(request.headers["content-length"] ?? "0")
    // Refused before a byte is read when the client says how much it sends;
    // a chunked body is cut off by `MaxBodySize` while it is read.
    if (declared > maxBodyBytes) return yield* tooLarge
    if (notJson(request)) return yield* unsupportedMediaType
    return yield* app.pipe(
      HttpIncomingMessage.withMaxBodySize(Option.some(maxBodyBytes)),
      Effect.catchAllCause(answer)
    ) as Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest>
  })
