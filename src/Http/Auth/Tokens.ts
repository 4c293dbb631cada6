/**
 * Credentials to principals: the admin token, compared in constant time, and
 * user JWTs (HS256, signed with `JWT_SECRET`, `sub` the user id, `exp`
 * required), verified and minted with jose. The tokens of unsubscribe links
 * are signed with the same secret and are never credentials here.
 */
import { createHash, timingSafeEqual } from "node:crypto"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { errors as JoseErrors, jwtVerify, SignJWT } from "jose"
import type { UserId } from "../../Domain/Ids.js"
import { UserId as UserIdSchema } from "../../Domain/Ids.js"
import { isUnsubscribeAudience } from "../../Unsubscribe/Token.js"
import { Unauthorized } from "../Errors.js"
import { AuthConfig, type AuthConfigShape } from "./Config.js"
import { admin, type Principal } from "./Principal.js"

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
  // Imported once: given the secret's bytes, jose imports a WebCrypto key on every
  // verification, which was most of the crypto in the profile of 5,000 stream opens.
  const verificationKey = crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["verify"])

  const verifyUserToken = (token: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.tryPromise({
        try: async () =>
          jwtVerify(token, await verificationKey, { algorithms: ["HS256"], currentDate: new Date(now) }),
        catch: (error) =>
          new Unauthorized({
            message: error instanceof JoseErrors.JWTExpired ? "the token has expired" : "the token is not valid"
          })
      })).pipe(
        // Checked before the claims a user token needs, so that an unsubscribe link's token is
        // refused for what it is, not only because it happens to lack `sub` and `exp`.
        Effect.filterOrFail(
          ({ payload }) => !isUnsubscribeAudience(payload.aud),
          () => new Unauthorized({ message: "an unsubscribe link's token is not a bearer token" })
        ),
        Effect.filterOrFail(
          ({ payload }) => payload.sub !== undefined && payload.exp !== undefined,
          () => new Unauthorized({ message: "the token is not valid: a user token has a sub and an exp" })
        ),
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
