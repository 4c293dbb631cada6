/**
 * The unsubscribe token and its links: a JWT exactly as jose would sign it,
 * which jose verifies, bound to its product, its user and its purpose. It
 * does not expire, and it survives a new process with the same secret.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Redacted } from "effect"
import { decodeProtectedHeader, jwtVerify, SignJWT } from "jose"
import { ProductId, UserId } from "../../src/Domain/Ids.js"
import * as Links from "../../src/Unsubscribe/Links.js"
import * as Token from "../../src/Unsubscribe/Token.js"

const secret = "a-secret-for-the-token-tests"
const key = Token.keyOf(Redacted.make(secret))
const product = ProductId.make(42)
const user = UserId.make(9_007_199_254_740_991)

describe("the unsubscribe token", () => {
  it.effect("is byte for byte what jose's SignJWT makes of the same claims, and jose verifies it", () =>
    Effect.gen(function*() {
      const token = Token.sign(key, product, user)
      const bySignJwt = yield* Effect.promise(() =>
        new SignJWT({ aud: Token.unsubscribeAudience, pid: product, uid: user })
          .setProtectedHeader({ alg: "HS256", typ: "JWT" })
          .sign(new TextEncoder().encode(secret)))
      expect(token).toBe(bySignJwt)
      expect(decodeProtectedHeader(token)).toEqual({ alg: "HS256", typ: "JWT" })
      const { payload } = yield* Effect.promise(() =>
        jwtVerify(token, new TextEncoder().encode(secret), { audience: Token.unsubscribeAudience }))
      // No expiry, and the user is not a `sub`: nothing takes it for a user token.
      expect(payload).toStrictEqual({ aud: "restock:unsubscribe", pid: 42, uid: 9_007_199_254_740_991 })
    }))

  it.effect("verifies to the product and user it names, under the same secret only", () =>
    Effect.gen(function*() {
      const token = Token.sign(key, product, user)
      expect(yield* Token.verify(key, token)).toEqual({ productId: product, userId: user })
      // A new key object from the same secret: a restarted process.
      expect(yield* Token.verify(Token.keyOf(Redacted.make(secret)), token)).toEqual({ productId: product, userId: user })
      const elsewhere = yield* Effect.either(Token.verify(Token.keyOf(Redacted.make("another secret")), token))
      expect(Either.isLeft(elsewhere) && elsewhere.left._tag).toBe("InvalidUnsubscribeToken")
    }))

  it.effect("a JWT of this secret without the unsubscribe audience, or with other claims, is not one", () =>
    Effect.gen(function*() {
      const raw = new TextEncoder().encode(secret)
      const sign = (claims: Record<string, unknown>) =>
        Effect.promise(() => new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(raw))
      const notOnes = [
        yield* sign({ sub: "9", exp: Math.floor(Date.now() / 1000) + 60 }),
        yield* sign({ pid: 42, uid: 9 }),
        yield* sign({ aud: "someone-else", pid: 42, uid: 9 }),
        yield* sign({ aud: Token.unsubscribeAudience, pid: 0, uid: 9 }),
        yield* sign({ aud: Token.unsubscribeAudience, pid: "42", uid: 9 }),
        yield* sign({ aud: Token.unsubscribeAudience, pid: 42 })
      ]
      for (const token of notOnes) {
        const result = yield* Effect.either(Token.verify(key, token))
        expect(Either.isLeft(result), token).toBe(true)
      }
    }))

  it("names its purpose in an audience the user-token verifier can refuse", () => {
    expect(Token.isUnsubscribeAudience("restock:unsubscribe")).toBe(true)
    expect(Token.isUnsubscribeAudience(["api", "restock:unsubscribe"])).toBe(true)
    expect(Token.isUnsubscribeAudience(undefined)).toBe(false)
    expect(Token.isUnsubscribeAudience("restock")).toBe(false)
  })
})

describe("UnsubscribeLinks", () => {
  it.effect("PUBLIC_URL + /unsubscribe/{token}, one slash whatever the base ends with, a path prefix kept", () =>
    Effect.gen(function*() {
      const token = Token.sign(key, product, user)
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["https://shop.example", "https://shop.example/unsubscribe/"],
        ["https://shop.example/", "https://shop.example/unsubscribe/"],
        ["http://127.0.0.1:8080", "http://127.0.0.1:8080/unsubscribe/"],
        ["https://shop.example/restock/", "https://shop.example/restock/unsubscribe/"],
        ["https://shop.example/restock//", "https://shop.example/restock/unsubscribe/"]
      ]
      for (const [publicUrl, prefix] of cases) {
        const links = Links.make({ publicUrl, secret })
        expect(yield* links.urlFor(product, user), publicUrl).toBe(prefix + token)
        expect(links.linkOf(product, user)).toBe(prefix + token)
      }
    }))

  it.effect("another product or user gets another link; the same pair, the same link", () =>
    Effect.gen(function*() {
      const links = Links.make({ publicUrl: "https://shop.example", secret })
      const link = links.linkOf(product, user)
      expect(links.linkOf(product, user)).toBe(link)
      expect(links.linkOf(ProductId.make(43), user)).not.toBe(link)
      expect(links.linkOf(product, UserId.make(8))).not.toBe(link)
      expect(yield* links.verify(link.slice(link.lastIndexOf("/") + 1))).toEqual({ productId: product, userId: user })
    }))
})
