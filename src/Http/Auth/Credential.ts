/**
 * The credential a request carries: the `Authorization: Bearer` header or,
 * where the endpoint allows it, `?access_token=` (browsers' EventSource
 * cannot set headers).
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Effect from "effect/Effect"
import { Unauthorized } from "../Errors.js"

const bearerHeader = /^Bearer +([^\s]+) *$/i

/**
 * The credential of a request: the `Authorization: Bearer` header or, where
 * `allowQuery`, the `access_token` query parameter. A header that is present
 * but not a bearer token is an error rather than silently ignored.
 */
export const credentialOf = (allowQuery: boolean) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const header = request.headers["authorization"]
    if (header !== undefined) {
      const match = bearerHeader.exec(header)
      return match
        ? match[1]!
        : yield* Effect.fail(new Unauthorized({ message: "the Authorization header is not \"Bearer <token>\"" }))
    }
    if (allowQuery) {
      const params = yield* HttpServerRequest.ParsedSearchParams
      const value = params["access_token"]
      if (typeof value === "string" && value !== "") return value
      if (Array.isArray(value)) {
        return yield* Effect.fail(new Unauthorized({ message: "access_token is given more than once" }))
      }
    }
    return yield* Effect.fail(
      new Unauthorized({
        message: allowQuery
          ? "a token is required: Authorization: Bearer <token> or ?access_token=<token>"
          : "the admin token is required: Authorization: Bearer <token>"
      })
    )
  })
