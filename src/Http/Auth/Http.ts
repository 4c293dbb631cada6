/**
 * The API's security schemes implemented: each middleware reads the
 * credential off the request and authenticates it.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Forbidden } from "../Errors.js"
import { AdminAuth, AdminStreamAuth, UserAuth } from "./Api.js"
import { credentialOf } from "./Credential.js"
import type { AuthConfig } from "./Config.js"
import { Authenticator } from "./Tokens.js"

const authenticateRequest = (allowQuery: boolean) =>
  Effect.flatMap(Authenticator, (authenticator) => Effect.flatMap(credentialOf(allowQuery), authenticator.authenticate))

const adminOnly = (allowQuery: boolean) =>
  Effect.flatMap(authenticateRequest(allowQuery), (principal) =>
    principal._tag === "Admin"
      ? Effect.void
      : Effect.fail(new Forbidden({ message: "this endpoint is for the admin token only" })))

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
