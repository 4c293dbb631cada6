/**
 * Authentication and authorisation at the edge (SPEC §4 "Auth"): the admin
 * token, user JWTs from the header or `?access_token=`, 401 for every bad
 * credential, 403 for a valid one that may not act, and nothing changed by a
 * refused request.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { SignJWT } from "jose"
import { asAdmin, databaseSnapshot, jwtSecret, layerServer, request, userToken } from "../support/Http.js"

const key = new TextEncoder().encode(jwtSecret)
const nowSeconds = () => Math.floor(Date.now() / 1000)

/** A JWT with the given claims, signed with `secret` (the server's unless said otherwise). */
const jwt = (claims: { sub?: string; exp?: number }, secret: Uint8Array = key) =>
  Effect.promise(() => {
    let token = new SignJWT({}).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt(nowSeconds() - 10)
    if (claims.sub !== undefined) token = token.setSubject(claims.sub)
    if (claims.exp !== undefined) token = token.setExpirationTime(claims.exp)
    return token.sign(secret)
  })

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

const setup = Effect.gen(function*() {
  yield* request("PUT", "/admin/products/1", { ...asAdmin, body: { name: "Kettle", stock: 5 } })
})

describe("credentials that are not valid are 401 Unauthorized", () => {
  it.live("on admin and user endpoints, and nothing changes", () =>
    Effect.gen(function*() {
      yield* setup
      const forged = yield* jwt({ sub: "1", exp: nowSeconds() + 3600 }, new TextEncoder().encode("another secret"))
      const expired = yield* jwt({ sub: "1", exp: nowSeconds() - 5 })
      const noExpiry = yield* jwt({ sub: "1" })
      const noSubject = yield* jwt({ exp: nowSeconds() + 3600 })
      const badSubject = yield* jwt({ sub: "user-1", exp: nowSeconds() + 3600 })
      const zeroSubject = yield* jwt({ sub: "0", exp: nowSeconds() + 3600 })
      const unsigned = `${base64url({ alg: "none", typ: "JWT" })}.${
        base64url({ sub: "1", exp: nowSeconds() + 3600 })
      }.`
      const valid = yield* jwt({ sub: "1", exp: nowSeconds() + 3600 })
      const tampered = valid.slice(0, -2) + (valid.endsWith("AA") ? "BB" : "AA")

      const credentials: ReadonlyArray<readonly [label: string, headers: Record<string, string>]> = [
        ["no credentials", {}],
        ["a wrong admin token", { authorization: "Bearer not-the-admin-token" }],
        ["the admin token with one character changed", { authorization: `Bearer ${asAdmin.token.slice(0, -1)}X` }],
        ["the admin token as Basic", { authorization: `Basic ${Buffer.from(`admin:${asAdmin.token}`).toString("base64")}` }],
        ["the admin token without a scheme", { authorization: asAdmin.token }],
        ["an empty bearer", { authorization: "Bearer " }],
        ["a forged token", { authorization: `Bearer ${forged}` }],
        ["an expired token", { authorization: `Bearer ${expired}` }],
        ["a token without expiry", { authorization: `Bearer ${noExpiry}` }],
        ["a token without subject", { authorization: `Bearer ${noSubject}` }],
        ["a token whose subject is no user id", { authorization: `Bearer ${badSubject}` }],
        ["a token whose subject is 0", { authorization: `Bearer ${zeroSubject}` }],
        ["an unsigned token (alg none)", { authorization: `Bearer ${unsigned}` }],
        ["a tampered token", { authorization: `Bearer ${tampered}` }]
      ]
      const endpoints: ReadonlyArray<readonly [string, string, unknown?]> = [
        ["PUT", "/admin/products/1/stock", { stock: 99 }],
        ["PUT", "/admin/products/2", { name: "new" }],
        ["POST", "/products/1/notifications/re-stock"],
        ["GET", "/admin/products"],
        ["POST", "/admin/users/1/token"],
        ["PUT", "/products/1/subscriptions/1"],
        ["DELETE", "/products/1/subscriptions/1"],
        ["GET", "/users/1/notifications/stream"],
        ["GET", "/admin/products/1/notifications/stream"],
        ["POST", "/admin/products/1/stock/adjustments", { delta: 1 }],
        ["POST", "/admin/products/1/notifications/re-stock"],
        ["GET", "/products/1/notifications"],
        ["GET", "/products/1/notifications/1"],
        ["GET", "/products/1/notifications/1/recipients"]
      ]
      const before = yield* databaseSnapshot
      for (const [label, headers] of credentials) {
        for (const [method, path, body] of endpoints) {
          const reply = yield* request(method, path, { headers, body })
          expect(reply.status, `${label}: ${method} ${path}`).toBe(401)
          expect(reply.body._tag, `${label}: ${method} ${path}`).toBe("Unauthorized")
          expect(reply.body.message).toBeTruthy()
        }
      }
      expect(yield* databaseSnapshot).toEqual(before)

      const expiredReply = yield* request("PUT", "/products/1/subscriptions/1", { token: expired })
      expect(expiredReply.body.message).toMatch(/expired/)
    }).pipe(Effect.provide(layerServer())), 60_000)

  it.live("?access_token= is a user-endpoint and admin-stream convenience, not accepted elsewhere", () =>
    Effect.gen(function*() {
      yield* setup
      const before = yield* databaseSnapshot
      const asQueryAdmin = yield* request("PUT", `/admin/products/1/stock?access_token=${asAdmin.token}`, {
        body: { stock: 99 }
      })
      expect(asQueryAdmin.status).toBe(401)
      expect(yield* databaseSnapshot).toEqual(before)

      const user = yield* userToken(1)
      const subscribed = yield* request("PUT", `/products/1/subscriptions/1?access_token=${user}`)
      expect(subscribed.status).toBe(200)
      expect(subscribed.body).toMatchObject({ productId: 1, userId: 1, active: true })
      const asAdminOnUser = yield* request("PUT", `/products/1/subscriptions/2?access_token=${asAdmin.token}`)
      expect(asAdminOnUser.status).toBe(200)

      const forgedQuery = yield* request("PUT", `/products/1/subscriptions/1?access_token=${user}x`)
      expect(forgedQuery.status).toBe(401)
      // A bad header is not rescued by a good query parameter, nor the other way round.
      const badHeader = yield* request("PUT", `/products/1/subscriptions/1?access_token=${user}`, {
        headers: { authorization: "Bearer nope" }
      })
      expect(badHeader.status).toBe(401)
    }).pipe(Effect.provide(layerServer())))
})

describe("valid tokens that may not act are 403 Forbidden", () => {
  it.live("a user token on admin endpoints, or acting for another user; nothing changes", () =>
    Effect.gen(function*() {
      yield* setup
      const user1 = yield* userToken(1)
      const before = yield* databaseSnapshot
      const refused: ReadonlyArray<readonly [string, string, unknown?]> = [
        ["PUT", "/admin/products/1/stock", { stock: 99 }],
        ["PUT", "/admin/products/2", { name: "new" }],
        ["POST", "/admin/products/1/stock/adjustments", { delta: 1 }],
        ["POST", "/products/1/notifications/re-stock"],
        ["POST", "/admin/products/1/notifications/re-stock"],
        ["GET", "/admin/products"],
        ["GET", "/products/1/notifications"],
        ["GET", "/products/1/notifications/1"],
        ["GET", "/products/1/notifications/1/recipients"],
        ["POST", "/admin/users/1/token"],
        ["POST", "/admin/users/2/token"],
        ["PUT", "/products/1/subscriptions/2"],
        ["DELETE", "/products/1/subscriptions/2"],
        ["GET", "/users/2/notifications/stream"],
        ["GET", "/admin/products/1/notifications/stream"]
      ]
      for (const [method, path, body] of refused) {
        const reply = yield* request(method, path, { token: user1, body })
        expect(reply.status, `${method} ${path}`).toBe(403)
        expect(reply.body._tag, `${method} ${path}`).toBe("Forbidden")
      }
      const viaQuery = yield* request("GET", `/admin/products/1/notifications/stream?access_token=${user1}`)
      expect(viaQuery.status).toBe(403)
      expect(yield* databaseSnapshot).toEqual(before)
    }).pipe(Effect.provide(layerServer())))
})

describe("minting user tokens", () => {
  it.live("an admin mints a token that acts for that user only, for the asked lifetime", () =>
    Effect.gen(function*() {
      yield* setup
      const minted = yield* request("POST", "/admin/users/7/token", asAdmin)
      expect(minted.status).toBe(200)
      expect(minted.body.token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/)
      const lifetime = Date.parse(minted.body.expiresAt) - Date.now()
      expect(lifetime).toBeGreaterThan(3500_000)
      expect(lifetime).toBeLessThanOrEqual(3600_000)
      const payload = JSON.parse(Buffer.from(minted.body.token.split(".")[1], "base64url").toString())
      expect(payload.sub).toBe("7")

      const short = yield* request("POST", "/admin/users/7/token", { ...asAdmin, body: { ttlSeconds: 60 } })
      expect(Date.parse(short.body.expiresAt) - Date.now()).toBeLessThanOrEqual(60_000)

      const mine = yield* request("PUT", "/products/1/subscriptions/7", { token: minted.body.token })
      expect(mine.status).toBe(200)
      const theirs = yield* request("PUT", "/products/1/subscriptions/8", { token: minted.body.token })
      expect(theirs.status).toBe(403)
    }).pipe(Effect.provide(layerServer())))

  it.live("a token signed with the secret by another tool is accepted", () =>
    Effect.gen(function*() {
      yield* setup
      const external = yield* jwt({ sub: "3", exp: nowSeconds() + 60 })
      const reply = yield* request("PUT", "/products/1/subscriptions/3", { token: external })
      expect(reply.status).toBe(200)
    }).pipe(Effect.provide(layerServer())))
})
