/**
 * One log line per request, like `HttpMiddleware.logger`, but with the
 * `access_token` query parameter redacted: browsers' EventSource puts the
 * admin token and user JWTs there, and they must not end up in logs.
 */
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import { redactCredentials } from "../Observability/Redact.js"

export const accessLog = HttpMiddleware.make((app) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const exit = yield* Effect.exit(app)
    if (!(yield* FiberRef.get(HttpMiddleware.loggerDisabled))) {
      const [response, cause] = exit._tag === "Failure"
        ? HttpServerError.causeResponseStripped(exit.cause)
        : [exit.value, Option.none()] as const
      yield* Effect.log(Option.isSome(cause) ? cause.value : "Sent HTTP response").pipe(
        Effect.annotateLogs({
          "http.method": request.method,
          "http.url": redactCredentials(request.url),
          "http.status": response.status
        })
      )
    }
    return yield* exit
  })
)
