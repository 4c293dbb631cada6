/**
 * One-click unsubscribe links (SPEC §3.13): `PUBLIC_URL` + `/unsubscribe/{token}`
 * for every notification, and the way back from a link's token to the
 * product and user it names. The token's format is `Token.ts`'s.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import type { InvalidUnsubscribeToken } from "../Domain/Errors.js"
import type { ProductId, UserId } from "../Domain/Ids.js"
import * as Token from "./Token.js"

export interface UnsubscribeLinksShape {
  /** The link that unsubscribes `userId` from `productId`. It is the same every time it is asked for. */
  readonly urlFor: (productId: ProductId, userId: UserId) => Effect.Effect<string>
  /**
   * `urlFor` without the effect, for code that runs for every send or event.
   * Making a link is a pure computation of about 3 µs.
   */
  readonly linkOf: (productId: ProductId, userId: UserId) => string
  /** Who a link's token unsubscribes from what; `InvalidUnsubscribeToken` unless this service signed it for that. */
  readonly verify: (token: string) => Effect.Effect<Token.UnsubscribeTarget, InvalidUnsubscribeToken>
}

export interface UnsubscribeLinksOptions {
  /** The service as users reach it (`PUBLIC_URL`); a path prefix is kept, a trailing slash is not doubled. */
  readonly publicUrl: URL | string
  /** `JWT_SECRET`. */
  readonly secret: Redacted.Redacted<string> | string
}

/** `publicUrl` without a trailing slash, so that `base + "/unsubscribe/..."` never reads `//unsubscribe`. */
export const baseOf = (publicUrl: URL | string): string => {
  const url = new URL(publicUrl)
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`
}

export const make = (options: UnsubscribeLinksOptions): UnsubscribeLinksShape => {
  const key = Token.keyOf(typeof options.secret === "string" ? Redacted.make(options.secret) : options.secret)
  const prefix = `${baseOf(options.publicUrl)}/unsubscribe/`
  const linkOf = (productId: ProductId, userId: UserId) => prefix + Token.sign(key, productId, userId)
  return {
    urlFor: (productId, userId) => Effect.sync(() => linkOf(productId, userId)),
    linkOf,
    verify: (token) => Token.verify(key, token)
  }
}

export class UnsubscribeLinks extends Context.Tag("restock/UnsubscribeLinks")<UnsubscribeLinks, UnsubscribeLinksShape>() {
  static readonly layer = (options: UnsubscribeLinksOptions): Layer.Layer<UnsubscribeLinks> =>
    Layer.sync(UnsubscribeLinks, () => make(options))
}
