/**
 * The security of the API (SPEC §4 "Auth"), declared beside the endpoint
 * groups that use it, so `/openapi.json` shows the schemes; `Http.ts` beside
 * it implements them.
 *
 * Missing, malformed, expired or forged credentials are 401 `Unauthorized`; a
 * valid token that may not do what it asks is 403 `Forbidden`.
 */
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { Forbidden, Unauthorized } from "../Errors.js"
import { CurrentPrincipal } from "./Principal.js"

const bearer = HttpApiSecurity.bearer.pipe(
  HttpApiSecurity.annotate(
    OpenApi.Description,
    "ADMIN_TOKEN, or a user token (HS256 JWT) where the endpoint allows it"
  )
)
const accessToken = HttpApiSecurity.apiKey({ in: "query", key: "access_token" })

/** Admin endpoints: `Authorization: Bearer <ADMIN_TOKEN>`. */
export class AdminAuth extends HttpApiMiddleware.Tag<AdminAuth>()("restock/Http/AdminAuth", {
  failure: Schema.Union(Unauthorized, Forbidden),
  security: { bearer }
}) {}

/** The admin progress stream: the admin token as a bearer token or `?access_token=`. */
export class AdminStreamAuth extends HttpApiMiddleware.Tag<AdminStreamAuth>()("restock/Http/AdminStreamAuth", {
  failure: Schema.Union(Unauthorized, Forbidden),
  security: { bearer, accessToken }
}) {}

/** User endpoints: a user token or the admin token, as a bearer token or `?access_token=`. */
export class UserAuth extends HttpApiMiddleware.Tag<UserAuth>()("restock/Http/UserAuth", {
  failure: Unauthorized,
  provides: CurrentPrincipal,
  security: { bearer, accessToken }
}) {}
