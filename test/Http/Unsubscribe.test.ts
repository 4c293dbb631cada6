/**
 * One-click unsubscribe (SPEC §3.13) over real HTTP: every notification
 * carries a link, a GET of it shows a page and changes nothing, its POST
 * (as RFC 8058 mail clients send it, or as the page's form does) unsubscribes
 * that user from that product only, idempotently. Nothing but a token this
 * service signed for that purpose is accepted there, and such a token is no
 * credential anywhere else.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { SignJWT } from "jose"
import { Restock } from "../../src/Dispatch/Restock.js"
import { ProductId, UserId } from "../../src/Domain/Ids.js"
import { Recording } from "../../src/Notifier/Recording.js"
import { UnsubscribeLinks } from "../../src/Unsubscribe/Links.js"
import {
  adminToken,
  asAdmin,
  databaseSnapshot,
  jwtSecret,
  layerServer,
  openStream,
  request,
  TestServer,
  userToken
} from "../support/Http.js"

const oneClick = { "content-type": "application/x-www-form-urlencoded" }

/** A product named `name` with users 1 and 2 subscribed. */
const seed = (name = "Blue kettle") =>
  Effect.gen(function*() {
    yield* request("PUT", "/admin/products/1", { ...asAdmin, body: { name, stock: 10 } })
    yield* request("PUT", "/admin/products/2", { ...asAdmin, body: { name: "Red kettle", stock: 10 } })
    for (const user of [1, 2]) {
      yield* request("PUT", `/products/1/subscriptions/${user}`, asAdmin)
      yield* request("PUT", `/products/2/subscriptions/${user}`, asAdmin)
    }
  })

/** Restocks product 1 and waits until its round is over. */
const restockAndWait = Effect.gen(function*() {
  const restock = yield* Restock
  const round = yield* restock.trigger(ProductId.make(1))
  return yield* restock.awaitRound(ProductId.make(1), round.restockRound)
}).pipe(Effect.orDie)

/** Whether the subscription row of `userId` to `productId` is active. */
const isActive = (productId: number, userId: number) =>
  Effect.map(databaseSnapshot, (snapshot) =>
    (snapshot.product_user_notification as ReadonlyArray<any>).some((row) =>
      row.product_id === productId && row.user_id === userId && Boolean(row.is_active)
    ))

/** The path of a link on the test server (the links name it, as `PUBLIC_URL` would). */
const pathOf = (url: string) => new URL(url).pathname

/** A link's path for `productId` and `userId`, as the service signs it. */
const linkPath = (productId: number, userId: number) =>
  Effect.map(UnsubscribeLinks, (links) => pathOf(links.linkOf(ProductId.make(productId), UserId.make(userId))))

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

describe("the link in every notification", () => {
  it.live("the SSE event and the notifier carry it; followed, it unsubscribes that user from that product only", () =>
    Effect.gen(function*() {
      yield* seed()
      const server = yield* TestServer
      const stream = yield* openStream("/users/1/notifications/stream", { token: yield* userToken(1) })
      expect(stream.status).toBe(200)
      yield* restockAndWait

      const [event] = yield* stream.take(1)
      const { unsubscribeUrl } = JSON.parse(event!.data)
      expect(unsubscribeUrl.startsWith(`${server.baseUrl}/unsubscribe/`)).toBe(true)
      // The notifier was handed the same link for user 1, and another for user 2.
      const sent = yield* (yield* Recording).delivered
      expect(sent.map((notification) => notification.userId)).toEqual([1, 2])
      expect(sent[0]!.unsubscribeUrl).toBe(unsubscribeUrl)
      expect(sent[1]!.unsubscribeUrl).not.toBe(unsubscribeUrl)

      // A replay from the history carries the same link.
      const replay = yield* openStream("/users/1/notifications/stream", {
        token: yield* userToken(1),
        headers: { "last-event-id": "0" }
      })
      const [replayed] = yield* replay.take(1)
      expect(JSON.parse(replayed!.data).unsubscribeUrl).toBe(unsubscribeUrl)

      // Followed literally, as a mail client's one-click POST.
      const reply = yield* Effect.promise(() =>
        fetch(unsubscribeUrl, { method: "POST", headers: oneClick, body: "List-Unsubscribe=One-Click" }))
      expect(reply.status).toBe(200)
      expect(reply.headers.get("content-type")).toMatch(/^application\/json/)
      expect(yield* Effect.promise(() => reply.json())).toEqual({ productId: 1, userId: 1, active: false })
      expect(yield* isActive(1, 1)).toBe(false)
      // Nobody else, and nothing else, changed.
      expect(yield* isActive(1, 2)).toBe(true)
      expect(yield* isActive(2, 1)).toBe(true)

      // The next round passes user 1 by.
      yield* restockAndWait
      const again = yield* (yield* Recording).delivered
      expect(again.map((notification) => notification.userId)).toEqual([1, 2, 2])
    }).pipe(Effect.scoped, Effect.provide(layerServer())))

  it.live("a PUBLIC_URL with a trailing slash makes no double slash", () =>
    Effect.gen(function*() {
      yield* seed()
      yield* restockAndWait
      const [first] = yield* (yield* Recording).delivered
      const server = yield* TestServer
      expect(first!.unsubscribeUrl.startsWith(`${server.baseUrl}/unsubscribe/`)).toBe(true)
      expect(first!.unsubscribeUrl).not.toContain("//unsubscribe")
      const reply = yield* Effect.promise(() => fetch(first!.unsubscribeUrl, { method: "POST" }))
      expect(reply.status).toBe(200)
    }).pipe(Effect.provide(layerServer({ publicUrl: "http://127.0.0.1:{port}/" }))))
})

describe("POST /unsubscribe/{token}", () => {
  it.live("is idempotent, and takes the one-click form URL-encoded, multipart, empty, or no body at all", () =>
    Effect.gen(function*() {
      yield* seed()
      const path = yield* linkPath(1, 1)
      const server = yield* TestServer
      const multipart = new FormData()
      multipart.append("List-Unsubscribe", "One-Click")
      const bodies: ReadonlyArray<readonly [string, RequestInit]> = [
        ["URL-encoded", { headers: oneClick, body: "List-Unsubscribe=One-Click" }],
        ["multipart", { body: multipart }],
        ["an empty form", { headers: oneClick, body: "" }],
        ["no body", {}],
        ["an empty multipart form", { headers: { "content-type": "multipart/form-data; boundary=x" }, body: "" }]
      ]
      for (const [what, init] of bodies) {
        const reply = yield* Effect.promise(() => fetch(server.baseUrl + path, { method: "POST", ...init }))
        expect(reply.status, what).toBe(200)
        expect(yield* Effect.promise(() => reply.json()), what).toEqual({ productId: 1, userId: 1, active: false })
        expect(yield* isActive(1, 1), what).toBe(false)
      }
      // Subscribing again after the link was used reactivates the row, and the link still works.
      yield* request("PUT", "/products/1/subscriptions/1", asAdmin)
      expect(yield* isActive(1, 1)).toBe(true)
      expect((yield* request("POST", path)).status).toBe(200)
      expect(yield* isActive(1, 1)).toBe(false)
    }).pipe(Effect.provide(layerServer())))

  it.live("refuses a bad body with a clear error and changes nothing", () =>
    Effect.gen(function*() {
      yield* seed()
      const path = yield* linkPath(1, 1)
      const server = yield* TestServer
      const withFile = new FormData()
      withFile.append("List-Unsubscribe", new Blob(["One-Click"]), "one-click.txt")
      const before = yield* databaseSnapshot
      const cases: ReadonlyArray<readonly [string, RequestInit, number, string, RegExp]> = [
        ["another value", { headers: oneClick, body: "List-Unsubscribe=Yes" }, 400, "BadRequest", /One-Click/],
        ["a plain-text body", { headers: { "content-type": "text/plain" }, body: "List-Unsubscribe=One-Click" }, 415, "UnsupportedMediaType", /x-www-form-urlencoded/],
        ["a broken multipart body", { headers: { "content-type": "multipart/form-data; boundary=x" }, body: "not multipart" }, 400, "BadRequest", /multipart/],
        ["a file field", { body: withFile }, 400, "BadRequest", /file/],
        ["a form over the size bound", { headers: oneClick, body: `List-Unsubscribe=One-Click&pad=${"x".repeat(70_000)}` }, 413, "PayloadTooLarge", /exceeds/]
      ]
      for (const [what, init, status, tag, message] of cases) {
        const reply = yield* Effect.promise(() => fetch(server.baseUrl + path, { method: "POST", ...init }))
        const body = yield* Effect.promise(() => reply.json())
        expect(reply.status, what).toBe(status)
        expect(body._tag, what).toBe(tag)
        expect(body.message, what).toMatch(message)
      }
      expect(yield* databaseSnapshot).toEqual(before)
      // Forms are taken by this endpoint only.
      const elsewhere = yield* request("PUT", "/admin/products/1", {
        ...asAdmin,
        headers: oneClick,
        body: "name=Kettle"
      })
      expect(elsewhere.status).toBe(415)
    }).pipe(Effect.provide(layerServer())))

  it.live("a browser's form gets a confirmation page; API clients get the JSON", () =>
    Effect.gen(function*() {
      yield* seed()
      const path = yield* linkPath(1, 1)
      const browser = yield* request("POST", path, {
        headers: {
          ...oneClick,
          accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        },
        body: "List-Unsubscribe=One-Click"
      })
      expect(browser.status).toBe(200)
      expect(browser.headers.get("content-type")).toBe("text/html; charset=utf-8")
      expect(browser.text).toMatch(/^<!doctype html>/)
      expect(browser.text).toContain("Unsubscribed")
      expect(browser.text).toContain("Blue kettle")
      expect(yield* isActive(1, 1)).toBe(false)
      for (const accept of [undefined, "*/*", "application/json", "application/json, text/html;q=0.5", "text/html, application/json"]) {
        const reply = yield* request("POST", path, { headers: accept === undefined ? {} : { accept } })
        expect(reply.status, accept).toBe(200)
        expect(reply.headers.get("content-type"), accept).toMatch(/^application\/json/)
        expect(reply.body, accept).toEqual({ productId: 1, userId: 1, active: false })
      }
    }).pipe(Effect.provide(layerServer())))
})

describe("GET /unsubscribe/{token}", () => {
  it.live("answers a small page naming the product whose button POSTs, and changes nothing", () =>
    Effect.gen(function*() {
      yield* seed("<Kettle> & \"Co\"'s")
      const path = yield* linkPath(1, 1)
      const before = yield* databaseSnapshot
      const page = yield* request("GET", path, { headers: { accept: "text/html" } })
      expect(page.status).toBe(200)
      expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8")
      expect(page.text).toMatch(/^<!doctype html>\n<html lang="en">/)
      expect(page.text).toContain("&lt;Kettle&gt; &amp; &quot;Co&quot;&#39;s")
      expect(page.text).not.toContain("<Kettle>")
      expect(page.text).not.toMatch(/<script/i)
      // No action: the form posts back to the page's own URL, with what RFC 8058 clients send.
      expect(page.text).toMatch(/<form method="post">\s*<input type="hidden" name="List-Unsubscribe" value="One-Click">/)
      expect(page.headers.get("content-security-policy")).toMatch(/default-src 'none'/)
      expect(page.headers.get("content-security-policy")).toMatch(/form-action 'self'/)
      expect(page.headers.get("content-security-policy")).toMatch(/frame-ancestors 'none'/)
      expect(page.headers.get("referrer-policy")).toBe("no-referrer")
      expect(page.headers.get("cache-control")).toBe("no-store")
      // Fetched again, by a scanner with no Accept at all: still nothing changes.
      expect((yield* request("GET", path)).status).toBe(200)
      expect(yield* databaseSnapshot).toEqual(before)
    }).pipe(Effect.provide(layerServer())))
})

describe("only a token this service signed for unsubscribing", () => {
  it.live("a tampered token, another product's or user's signature, a user JWT, the admin token: 400, nothing changed", () =>
    Effect.gen(function*() {
      yield* seed()
      const genuine = (yield* linkPath(1, 1)).slice("/unsubscribe/".length)
      const [header, , signature] = genuine.split(".")
      const key = new TextEncoder().encode(jwtSecret)
      const userJwt = yield* userToken(1)
      const signedElsewhere = yield* Effect.promise(() =>
        new SignJWT({ pid: 1, uid: 1 }).setProtectedHeader({ alg: "HS256", typ: "JWT" })
          .setAudience("restock:unsubscribe").sign(new TextEncoder().encode("another secret")))
      const withoutPurpose = yield* Effect.promise(() =>
        new SignJWT({ pid: 1, uid: 1 }).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(key))
      const tokens: ReadonlyArray<readonly [string, string]> = [
        ["a flipped signature", `${header}.${genuine.split(".")[1]}.${signature!.slice(0, -2)}${signature!.endsWith("AA") ? "BB" : "AA"}`],
        ["another product under this signature", `${header}.${base64url({ aud: "restock:unsubscribe", pid: 2, uid: 1 })}.${signature}`],
        ["another user under this signature", `${header}.${base64url({ aud: "restock:unsubscribe", pid: 1, uid: 2 })}.${signature}`],
        ["unsigned (alg none)", `${base64url({ alg: "none" })}.${genuine.split(".")[1]}.`],
        ["signed with another secret", signedElsewhere],
        ["this secret, but not for unsubscribing", withoutPurpose],
        ["a user JWT", userJwt],
        ["the admin token", adminToken],
        ["not a token at all", "hello"],
        ["very long", "a".repeat(5000)]
      ]
      const before = yield* databaseSnapshot
      for (const [what, token] of tokens) {
        for (const method of ["GET", "POST"]) {
          const reply = yield* request(method, `/unsubscribe/${token}`, {
            headers: method === "POST" ? oneClick : {},
            body: method === "POST" ? "List-Unsubscribe=One-Click" : undefined
          })
          expect(reply.status, `${method} ${what}`).toBe(400)
          expect(reply.body, `${method} ${what}`).toEqual({
            _tag: "InvalidUnsubscribeToken",
            message: expect.stringContaining("not a valid unsubscribe link")
          })
        }
      }
      expect(yield* databaseSnapshot).toEqual(before)
    }).pipe(Effect.provide(layerServer())))

  it.live("an unsubscribe token as a bearer token is 401, on user and admin endpoints alike", () =>
    Effect.gen(function*() {
      yield* seed()
      const token = (yield* linkPath(1, 1)).slice("/unsubscribe/".length)
      const before = yield* databaseSnapshot
      const attempts: ReadonlyArray<readonly [string, string]> = [
        ["PUT", "/products/1/subscriptions/1"],
        ["DELETE", "/products/1/subscriptions/1"],
        ["GET", "/products/1/notifications"],
        ["POST", "/products/1/notifications/re-stock"]
      ]
      for (const [method, path] of attempts) {
        const reply = yield* request(method, path, { token })
        expect(reply.status, `${method} ${path}`).toBe(401)
        expect(reply.body._tag).toBe("Unauthorized")
        expect(reply.body.message, `${method} ${path}`).toMatch(/unsubscribe link's token is not a bearer token/)
      }
      const stream = yield* openStream(`/users/1/notifications/stream?access_token=${token}`)
      expect(stream.status).toBe(401)
      expect(yield* databaseSnapshot).toEqual(before)
    }).pipe(Effect.scoped, Effect.provide(layerServer())))

  it.live("both endpoints are in /openapi.json, with no security, the POST taking the one-click form", () =>
    Effect.gen(function*() {
      const spec = (yield* request("GET", "/openapi.json")).body
      const operations = spec.paths["/unsubscribe/{token}"]
      expect(Object.keys(operations).sort()).toEqual(["get", "post"])
      expect(operations.get.security).toEqual([])
      expect(Object.keys(operations.get.responses["200"].content)).toEqual(["text/html"])
      expect(operations.post.security).toEqual([])
      expect(Object.keys(operations.post.requestBody.content).sort()).toEqual([
        "application/x-www-form-urlencoded",
        "multipart/form-data"
      ])
      expect(operations.post.requestBody.required).toBe(false)
      expect(Object.keys(operations.post.responses["200"].content).sort()).toEqual(["application/json", "text/html"])
      expect(JSON.stringify(operations.post.responses["400"])).toContain("InvalidUnsubscribeToken")
    }).pipe(Effect.provide(layerServer())))
})
