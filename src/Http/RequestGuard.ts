/**
 * What the edge answers when a request never reaches a handler's logic: a
 * path a `;` would cut short, a body that is too large, too deep, not JSON
 * (nor a form, where the endpoint takes one) or of another media type, input
 * that does not match the schema, a route that does not exist, or a defect.
 * Every answer is JSON `{ _tag, message }` like the errors handlers fail with
 * (SPEC §4), and none of these requests reaches a handler: nothing it carried
 * can change data.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpApiError from "@effect/platform/HttpApiError"
import * as HttpMethod from "@effect/platform/HttpMethod"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { Api } from "./Api.js"
import { BadRequest, InternalError, NotFound, PayloadTooLarge, UnsupportedMediaType } from "./Errors.js"
import {
  type FormMediaType,
  formMediaTypes,
  hasBody,
  maxBodyBytes,
  maxBodyDepth,
  readFormBody,
  readJsonBody,
  withReadBody,
  withReadForm
} from "./RequestBody.js"

const respond = <A, I>(
  schema: Schema.Schema<A, I>,
  status: number,
  error: A,
  headers?: Record<string, string>
) => HttpServerResponse.json(Schema.encodeSync(schema)(error), { status, headers }).pipe(Effect.orDie)

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

/**
 * Too large. When the body was being read, the connection closes after the
 * answer: the rest of the upload is drained, not waited for on a kept-alive
 * connection.
 */
const tooLarge = (closeAfter: boolean) =>
  respond(
    PayloadTooLarge,
    413,
    new PayloadTooLarge({ message: `the request body exceeds ${maxBodyBytes} bytes`, maxBytes: maxBodyBytes }),
    closeAfter ? { connection: "close" } : undefined
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
    if (Option.isSome(Cause.dieOption(cause))) {
      yield* Effect.logError("unexpected error", cause)
      return yield* respond(InternalError, 500, new InternalError({ message: "unexpected server error" }))
    }
    // Interruption: the client went away, nobody is listening.
    return yield* Effect.failCause(cause)
  })

/**
 * `;` (and `#`) end a path for the router: `/products/1;x/notifications`
 * would be routed as `/products/1`, the rest taken for a query. No path of
 * the API has either, so a path that does is refused whole.
 */
const pathCutter = (url: string): string | undefined => {
  const query = url.indexOf("?")
  const path = query === -1 ? url : url.slice(0, query)
  return path.includes(";") ? ";" : path.includes("#") ? "#" : undefined
}

/**
 * The bodies of the API are JSON: `application/json`, with parameters or
 * none. The platform reads other media types another way (`+json` types as
 * bytes, which an optional payload took for no body at all), so on a method
 * that carries a body anything else is refused, body or not. The one
 * exception is an endpoint whose payload declares a form encoding
 * (`formEndpoints`): it takes those forms too, read here like JSON is.
 */
const isJsonMediaType = (contentType: string | undefined): boolean =>
  contentType === undefined || /^\s*application\/json\s*(;|$)/i.test(contentType)

/** The media type of a `Content-Type`, lower case, without its parameters. */
const mediaTypeOf = (contentType: string | undefined): string | undefined =>
  contentType?.split(";")[0]!.trim().toLowerCase()

const unsupportedMediaType = (accepted: ReadonlyArray<string>) =>
  respond(
    UnsupportedMediaType,
    415,
    new UnsupportedMediaType({
      message: accepted.length === 0
        ? "request bodies are JSON: send Content-Type: application/json"
        : `this endpoint takes a body of ${accepted.join(", ")} or application/json, or none`
    })
  )

interface FormEndpoint {
  readonly method: string
  readonly path: RegExp
  readonly mediaTypes: ReadonlyArray<FormMediaType>
}

/**
 * The endpoints that take a form, and which forms, read from the API's own
 * declarations. An endpoint accepts a form only if its payload says so, so
 * no list here can drift from the API.
 */
const formEndpoints: ReadonlyArray<FormEndpoint> = (() => {
  const found: Array<FormEndpoint> = []
  HttpApi.reflect(Api, {
    onGroup: () => {},
    onEndpoint: ({ endpoint, payloads }) => {
      const mediaTypes = formMediaTypes.filter((mediaType) => payloads.has(mediaType))
      if (mediaTypes.length === 0) return
      const segments = endpoint.path.split("/").map((segment) =>
        segment.startsWith(":") ? "[^/]+" : segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
      found.push({ method: endpoint.method, path: new RegExp(`^${segments.join("/")}$`), mediaTypes })
    }
  })
  return found
})()

const formMediaTypesOf = (method: string, url: string): ReadonlyArray<FormMediaType> => {
  const query = url.indexOf("?")
  const path = query === -1 ? url : url.slice(0, query)
  return formEndpoints.find((endpoint) => endpoint.method === method && endpoint.path.test(path))?.mediaTypes ?? []
}

/**
 * Refuses what must not reach a handler (above), reads a body once, within
 * its bounds, then renders the failures of the handlers' decoding as JSON.
 */
export const requestGuard = <E, R>(
  app: HttpApp.Default<E, R>
): HttpApp.Default<E, R> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const cutter = pathCutter(request.url)
    if (cutter !== undefined) {
      return yield* badRequest(
        new BadRequest({ message: `a path may not contain '${cutter}': path ids are decimal digits only` })
      )
    }
    const handled = app.pipe(Effect.catchAllCause(answer)) as Effect.Effect<
      HttpServerResponse.HttpServerResponse,
      E,
      R | HttpServerRequest.HttpServerRequest
    >
    if (!HttpMethod.hasBody(request.method)) return yield* handled
    const contentType = request.headers["content-type"]
    const forms = formMediaTypesOf(request.method, request.url)
    const form = forms.find((mediaType) => mediaType === mediaTypeOf(contentType))
    if (form === undefined && !isJsonMediaType(contentType)) return yield* unsupportedMediaType(forms)
    // Refused before a byte is read when the client says how much it sends.
    if (Number(request.headers["content-length"] ?? "0") > maxBodyBytes) return yield* tooLarge(false)
    if (form !== undefined) {
      // Read even when empty: the platform's own multipart reader would fail on an empty body.
      const body = yield* readFormBody(request, form).pipe(
        Effect.catchAll((error) => Effect.succeed({ _tag: "NotForm", reason: String(error.cause) } as const))
      )
      switch (body._tag) {
        case "TooLarge":
          return yield* tooLarge(true)
        case "NotForm":
          return yield* badRequest(new BadRequest({ message: `the request body is not a valid form: ${body.reason}` }))
        case "Read":
          return yield* Effect.provideService(handled, HttpServerRequest.HttpServerRequest, withReadForm(request, body))
      }
    }
    if (!hasBody(request)) return yield* handled
    const body = yield* readJsonBody(request).pipe(
      Effect.catchAll((error) => Effect.succeed({ _tag: "NotJson", reason: String(error.cause) } as const))
    )
    switch (body._tag) {
      case "TooLarge":
        return yield* tooLarge(true)
      case "TooDeep":
        return yield* badRequest(
          new BadRequest({ message: `the request body is nested more than ${maxBodyDepth} levels deep` })
        )
      case "NotJson":
        return yield* badRequest(new BadRequest({ message: `the request body is not valid JSON: ${body.reason}` }))
      case "Read":
        return yield* Effect.provideService(handled, HttpServerRequest.HttpServerRequest, withReadBody(request, body))
    }
  })
