/**
 * Who is calling (SPEC §4 "Auth").
 *
 * - The operator holds `ADMIN_TOKEN`, sent as `Authorization: Bearer <token>`
 *   and compared in constant time.
 * - A user holds an HS256 JWT signed with `JWT_SECRET` whose `sub` is their
 *   user id and which expires (`exp`). It is accepted as a bearer token or as
 *   `?access_token=` (browsers' EventSource cannot set headers).
 *
 * Missing, malformed, expired or forged credentials are 401 `Unauthorized`; a
 * valid token that may not do what it asks is 403 `Forbidden`.
 */
import { HttpApiMiddleware, HttpApiSecurity, HttpServerRequest, OpenApi } from "@effect/platform"
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { Clock, Config, type ConfigError, Context, Duration, Effect, Layer, Option, Redacted, Schema } from "effect"
import { errors as JoseErrors, jwtVerify, SignJWT } from "jose"
import type { UserId } from "../Domain/Ids.js"
import { UserId as UserIdSchema } from "../Domain/Ids.js"
import { Forbidden, Unauthorized } from "./Errors.js"

// ---------------------------------------------------------------------------
// Configuration

export interface AuthConfigShape {
  readonly adminToken: Redacted.Redacted<string>
  readonly jwtSecret: Redacted.Redacted<string>
  /** How long a minted user token lives unless the request asks otherwise. */
  readonly defaultTokenTtl: Duration.Duration
}

/** The secrets of the edge: a service, so tests and `main.ts` choose them. */
export class AuthConfig extends Context.Tag("restock/Http/AuthConfig")<AuthConfig, AuthConfigShape>() {
  static readonly layer = (options: {
    readonly adminToken: Redacted.Redacted<string> | string
    readonly jwtSecret: Redacted.Redacted<string> | string
    readonly defaultTokenTtl?: Duration.DurationInput | undefined
  }): Layer.Layer<AuthConfig> =>
    Layer.succeed(AuthConfig, {
      adminToken: asRedacted(options.adminToken),
      jwtSecret: asRedacted(options.jwtSecret),
      defaultTokenTtl: Duration.decode(options.defaultTokenTtl ?? defaultTokenTtl)
    })

  /**
   * From `ADMIN_TOKEN` and `JWT_SECRET`. Nothing is ever open by default: an
   * unset admin token is replaced by a random one, logged once so the operator
   * can use it; an unset JWT secret by a random one per process (tokens do not
   * survive a restart, hence the warning).
   */
  static readonly layerConfig: Layer.Layer<AuthConfig, ConfigError.ConfigError> = Layer.effect(
    AuthConfig,
    Effect.gen(function*() {
      const adminToken = yield* optionalSecret("ADMIN_TOKEN")
      const jwtSecret = yield* optionalSecret("JWT_SECRET")
      const admin = yield* Option.match(adminToken, {
        onSome: Effect.succeed,
        onNone: () => {
          const generated = randomSecret()
          return Effect.as(
            Effect.logWarning(`ADMIN_TOKEN is not set: generated one for this process: ${generated}`),
            Redacted.make(generated)
          )
        }
      })
      const secret = yield* Option.match(jwtSecret, {
        onSome: Effect.succeed,
        onNone: () =>
          Effect.as(
            Effect.logWarning("JWT_SECRET is not set: user tokens are signed with a random secret and die with this process"),
            Redacted.make(randomSecret())
          )
      })
      return { adminToken: admin, jwtSecret: secret, defaultTokenTtl: Duration.decode(defaultTokenTtl) }
    })
  )
}

const defaultTokenTtl: Duration.DurationInput = "1 hour"

const asRedacted = (value: Redacted.Redacted<string> | string): Redacted.Redacted<string> =>
  typeof value === "string" ? Redacted.make(value) : value

const randomSecret = (): string => randomBytes(32).toString("base64url")

/** An unset or empty variable is `None`. */
const optionalSecret = (name: string) =>
  Config.redacted(name).pipe(
    Config.option,
    Config.map(Option.filter((value) => Redacted.value(value).trim() !== ""))
  )

// ---------------------------------------------------------------------------
// Principals

/** The operator, holding `ADMIN_TOKEN`. */
export interface Admin {
  readonly _tag: "Admin"
}

/** A user, holding a token that names them and stops working at `expiresAt`. */
export interface User {
  readonly _tag: "User"
  readonly userId: UserId
  readonly expiresAt: Date
}

export type Principal = Admin | User

export const admin: Admin = { _tag: "Admin" }

/** The caller of a user endpoint, as its middleware authenticated it. */
export class CurrentPrincipal extends Context.Tag("restock/Http/CurrentPrincipal")<CurrentPrincipal, Principal>() {}

/** Passes for the admin and for the user `userId`; any other user is 403. */
export const requireActingFor = (userId: UserId): Effect.Effect<Principal, Forbidden, CurrentPrincipal> =>
  Effect.flatMap(CurrentPrincipal, (principal) =>
    principal._tag === "Admin" || principal.userId === userId
      ? Effect.succeed(principal)
      : Effect.fail(new Forbidden({ message: `a token of user ${principal.userId} cannot act for user ${userId}` })))

// ---------------------------------------------------------------------------
// Tokens

export interface MintedToken {
  readonly token: string
  readonly expiresAt: Date
}

export interface AuthenticatorShape {
  /** Who a raw bearer credential belongs to, or `Unauthorized` saying why not. */
  readonly authenticate: (credential: string) => Effect.Effect<Principal, Unauthorized>
  /** Signs a user token that expires after `ttl` (the configured default if not given). */
  readonly mint: (userId: UserId, ttl?: Duration.Duration | undefined) => Effect.Effect<MintedToken>
}

export class Authenticator extends Context.Tag("restock/Http/Authenticator")<Authenticator, AuthenticatorShape>() {
  static readonly layer: Layer.Layer<Authenticator, never, AuthConfig> = Layer.effect(
    Authenticator,
    Effect.map(AuthConfig, (config) => makeAuthenticator(config))
  )
}

const sha256 = (value: string): Buffer => createHash("sha256").update(value, "utf8").digest()

/** Equal-length digests, so neither the content nor the length of the token leaks through timing. */
const constantTimeEquals = (expectedDigest: Buffer, candidate: string): boolean =>
  timingSafeEqual(expectedDigest, sha256(candidate))

const subject = Schema.decodeUnknownOption(
  Schema.compose(
    Schema.String.pipe(Schema.pattern(/^[1-9][0-9]{0,15}$/)),
    Schema.compose(Schema.NumberFromString, UserIdSchema)
  )
)

export const makeAuthenticator = (config: AuthConfigShape): AuthenticatorShape => {
  const adminDigest = sha256(Redacted.value(config.adminToken))
  const key = new TextEncoder().encode(Redacted.value(config.jwtSecret))

  const verifyUserToken = (token: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.tryPromise({
        try: () =>
          jwtVerify(token, key, {
            algorithms: ["HS256"],
            requiredClaims: ["sub", "exp"],
            currentDate: new Date(now)
          }),
        catch: (error) =>
          new Unauthorized({
            message: error instanceof JoseErrors.JWTExpired ? "the token has expired" : "the token is not valid"
          })
      })).pipe(
        Effect.flatMap(({ payload }) =>
          Option.match(subject(payload.sub), {
            onNone: () => Effect.fail(new Unauthorized({ message: "the token names no valid user id" })),
            onSome: (userId): Effect.Effect<Principal> =>
              Effect.succeed({ _tag: "User", userId, expiresAt: new Date((payload.exp ?? 0) * 1000) })
          })
        )
      )

  return {
    authenticate: (credential) =>
      constantTimeEquals(adminDigest, credential)
        ? Effect.succeed(admin)
        : looksLikeJwt(credential)
        ? verifyUserToken(credential)
        : Effect.fail(new Unauthorized({ message: "the token is not valid" })),
    mint: (userId, ttl) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const issuedAt = Math.floor(now / 1000)
        const expiresAtSeconds = issuedAt + Math.max(1, Math.ceil(Duration.toSeconds(ttl ?? config.defaultTokenTtl)))
        const token = yield* Effect.promise(() =>
          new SignJWT({})
            .setProtectedHeader({ alg: "HS256", typ: "JWT" })
            .setSubject(String(userId))
            .setIssuedAt(issuedAt)
            .setExpirationTime(expiresAtSeconds)
            .sign(key)
        )
        return { token, expiresAt: new Date(expiresAtSeconds * 1000) }
      })
  }
}

const looksLikeJwt = (credential: string): boolean => /^[\w-]+\.[\w-]+\.[\w-]+$/.test(credential)

// ---------------------------------------------------------------------------
// Reading the credential off a request

const bearerHeader = /^Bearer +([^\s]+) *$/i

/**
 * The credential of a request: the `Authorization: Bearer` header or, where
 * `allowQuery`, the `access_token` query parameter. A header that is present
 * but not a bearer token is an error rather than silently ignored.
 */
const credentialOf = (allowQuery: boolean) =>
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

const authenticateRequest = (allowQuery: boolean) =>
  Effect.flatMap(Authenticator, (authenticator) => Effect.flatMap(credentialOf(allowQuery), authenticator.authenticate))

const adminOnly = (allowQuery: boolean) =>
  Effect.flatMap(authenticateRequest(allowQuery), (principal) =>
    principal._tag === "Admin"
      ? Effect.void
      : Effect.fail(new Forbidden({ message: "this endpoint is for the admin token only" })))

// ---------------------------------------------------------------------------
// Middlewares: declared in the API (so `/openapi.json` shows the schemes),
// implemented here.

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

/*
 * Each scheme's handler reads the request itself rather than the credential
 * it is handed: the schemes are tried in turn and the last failure wins, so
 * every handler must reach the same verdict (an invalid header must not be
 * masked by "no access_token").
 */
const withAuthenticator = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Authenticator, (authenticator) => Effect.provideService(effect, Authenticator, authenticator))

export const AuthMiddlewareLive: Layer.Layer<AdminAuth | AdminStreamAuth | UserAuth, never, Authenticator> = Layer
  .mergeAll(
    Layer.effect(
      AdminAuth,
      Effect.map(withAuthenticator(adminOnly(false)), (check) => AdminAuth.of({ bearer: () => check }))
    ),
    Layer.effect(
      AdminStreamAuth,
      Effect.map(
        withAuthenticator(adminOnly(true)),
        (check) => AdminStreamAuth.of({ bearer: () => check, accessToken: () => check })
      )
    ),
    Layer.effect(
      UserAuth,
      Effect.map(
        withAuthenticator(authenticateRequest(true)),
        (user) => UserAuth.of({ bearer: () => user, accessToken: () => user })
      )
    )
  )

/** Everything auth needs, from its configuration. */
export const AuthLive: Layer.Layer<AdminAuth | AdminStreamAuth | UserAuth | Authenticator, never, AuthConfig> =
  AuthMiddlewareLive.pipe(Layer.provideMerge(Authenticator.layer))
