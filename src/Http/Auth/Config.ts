/**
 * The secrets of the edge (SPEC §4 "Auth", §5): `ADMIN_TOKEN` and
 * `JWT_SECRET`, as a service so that tests and `main.ts` choose them.
 */
import { randomBytes } from "node:crypto"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"

export interface AuthConfigShape {
  readonly adminToken: Redacted.Redacted<string>
  readonly jwtSecret: Redacted.Redacted<string>
  /** How long a minted user token lives unless the request asks otherwise. */
  readonly defaultTokenTtl: Duration.Duration
}

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
   * From `ADMIN_TOKEN` and `JWT_SECRET` as `AppConfig` read them. Nothing is
   * ever open by default: an unset admin token is replaced by a random one,
   * logged once so the operator can use it; an unset JWT secret by a random
   * one per process (tokens do not survive a restart, hence the warning). An
   * effect, so that `main.ts` hands the one secret to the edge and to the
   * unsubscribe links alike, generated or not.
   */
  static readonly fromSecrets = (secrets: {
    readonly adminToken: Option.Option<Redacted.Redacted<string>>
    readonly jwtSecret: Option.Option<Redacted.Redacted<string>>
  }): Effect.Effect<AuthConfigShape> => Effect.gen(function*() {
    const { adminToken, jwtSecret } = secrets
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
          Effect.logWarning("JWT_SECRET is not set: user tokens and unsubscribe links are signed with a random secret and die with this process"),
          Redacted.make(randomSecret())
        )
    })
    return { adminToken: admin, jwtSecret: secret, defaultTokenTtl: Duration.decode(defaultTokenTtl) }
  })
}

const defaultTokenTtl: Duration.DurationInput = "1 hour"

const asRedacted = (value: Redacted.Redacted<string> | string): Redacted.Redacted<string> =>
  typeof value === "string" ? Redacted.make(value) : value

const randomSecret = (): string => randomBytes(32).toString("base64url")
