/**
 * Who is calling, once authenticated: the operator or a user, and the rule
 * that a user acts only for themself.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type { UserId } from "../../Domain/Ids.js"
import { Forbidden } from "../Errors.js"

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
