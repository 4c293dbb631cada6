/**
 * The five ways input once got past the HTTP edge, each over a real socket:
 * a `;` that cut a path short, bodies of a JSON-ish media type that nobody
 * decoded, JSON nested deep enough to overflow the stack, a chunked body over
 * the limit that reset the connection, and a path id too long for the router.
 * Each is refused with the status SPEC §4 gives and changes nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { connect } from "node:net"
import { ProductId } from "../../src/Domain/Ids.js"
import { Repo } from "../../src/Repo/Repo.js"
import { StockCache } from "../../src/StockCache/StockCache.js"
import { asAdmin, databaseSnapshot, layerServer, request, TestServer, userToken } from "../support/Http.js"

/**
 * A request whose body is sent in chunks of 8 KiB, without a Content-Length.
 * Answers the status, or `"cut"` when the server dropped the connection
 * without one.
 */
export const chunkedRequest = (port: number, method: string, path: string, body: string) =>
  new Promise<{ status: number | "cut"; body: string }>((resolve) => {
    const socket = connect({ host: "127.0.0.1", port })
    let received = ""
    socket.setEncoding("utf8")
    socket.on("data", (data) => (received += data))
    socket.on("error", () => {}) // a reset is what the caller wants to see as "cut"
    socket.on("close", () => {
      const [head = "", rest = ""] = received.split("\r\n\r\n")
      const status = Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1])
      // The answer is not chunked (Content-Length), so the body is what follows the head.
      resolve({ status: Number.isNaN(status) ? "cut" : status, body: rest })
    })
    socket.write(
      `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${asAdmin.token}\r\n` +
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    for (let offset = 0; offset < body.length; offset += 8192) {
      const chunk = body.slice(offset, offset + 8192)
      socket.write(`${Buffer.byteLength(chunk).toString(16)}\r\n${chunk}\r\n`)
    }
    socket.write("0\r\n\r\n")
  })

const kettle = request("PUT", "/admin/products/1", { ...asAdmin, body: { name: "Kettle", stock: 5 } })

/** The stock as the cache (the authority) and the database hold it. */
const stockOfKettle = Effect.gen(function*() {
  const cached = yield* (yield* StockCache).get(ProductId.make(1))
  const row = yield* (yield* Repo).getProduct(ProductId.make(1))
  return { cached, stored: row._tag === "Some" ? row.value.stock : undefined }
})

describe("the HTTP edge refuses what once got through", () => {
  it.live("a ';' in a path is 400, never a shorter path", () =>
    Effect.gen(function*() {
      yield* kettle
      const alice = yield* userToken(1)
      const before = yield* databaseSnapshot
      const cases: ReadonlyArray<readonly [string, string, string, unknown]> = [
        ["PUT", "/admin/products/1;DROP%20TABLE%20product/stock", asAdmin.token, { stock: 9 }],
        ["PUT", "/admin/products/1;x", asAdmin.token, { name: "Renamed" }],
        ["PUT", "/products/1/subscriptions/1;x", alice, undefined],
        ["PUT", "/products/1;x/subscriptions/1", alice, undefined],
        ["GET", "/products/1;x/notifications", asAdmin.token, undefined],
        ["GET", "/products/1;x", asAdmin.token, undefined],
        ["POST", "/products/1;x/notifications/re-stock", asAdmin.token, { stock: 3 }],
        ["GET", "/admin/products;limit=1", asAdmin.token, undefined]
      ]
      for (const [method, path, token, body] of cases) {
        const reply = yield* request(method, path, { token, body })
        expect(reply.status, `${method} ${path}`).toBe(400)
        expect(reply.body, `${method} ${path}`).toMatchObject({ _tag: "BadRequest" })
        expect(reply.body.message, `${method} ${path}`).toMatch(/';'/)
      }
      expect(yield* databaseSnapshot).toEqual(before)
      expect(yield* stockOfKettle).toEqual({ cached: 5, stored: 5 })
      // A ';' in the query string is the query's business: here, a bad page size.
      const query = yield* request("GET", "/admin/products?limit=1;x", asAdmin)
      expect(query.status).toBe(400)
      expect(query.body.message).toMatch(/limit/)
    }).pipe(Effect.provide(layerServer())))

  it.live("a body of another media type than application/json is 415, whatever it claims to be", () =>
    Effect.gen(function*() {
      yield* kettle
      const before = yield* databaseSnapshot
      const mediaTypes = [
        "application/vnd.api+json",
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/jsonx",
        "text/json",
        "application/x-www-form-urlencoded",
        "text/plain"
      ]
      const cases: ReadonlyArray<readonly [string, string, string]> = [
        ["POST", "/products/1/notifications/re-stock", "{\"stock\":\"abc\"}"],
        ["POST", "/products/1/notifications/re-stock", "{\"stock\":3}"],
        ["PUT", "/admin/products/1", "{\"name\":7}"],
        ["PUT", "/admin/products/2", "{\"name\":\"New\"}"],
        ["PUT", "/admin/products/1/stock", "{\"stock\":-1}"],
        ["POST", "/admin/products/1/stock/adjustments", "{\"delta\":\"x\"}"],
        ["POST", "/admin/users/1/token", "{\"ttlSeconds\":0}"]
      ]
      for (const contentType of mediaTypes) {
        for (const [method, path, body] of cases) {
          const label = `${method} ${path} as ${contentType}`
          const reply = yield* request(method, path, { ...asAdmin, body, headers: { "content-type": contentType } })
          expect(reply.status, label).toBe(415)
          expect(reply.body, label).toMatchObject({ _tag: "UnsupportedMediaType" })
        }
        // Without a body, a media type that is not JSON still names a body nobody will read.
        const empty = yield* request("POST", "/products/1/notifications/re-stock", {
          ...asAdmin,
          headers: { "content-type": contentType }
        })
        expect(empty.status, `an empty body as ${contentType}`).toBe(415)
      }
      expect(yield* databaseSnapshot).toEqual(before)
      expect(yield* stockOfKettle).toEqual({ cached: 5, stored: 5 })

      // application/json, with or without parameters and in any case, is read as always.
      for (const contentType of ["application/json", "application/json; charset=utf-8", "Application/JSON"]) {
        const reply = yield* request("PUT", "/admin/products/1", {
          ...asAdmin,
          body: "{\"name\":\"Kettle\"}",
          headers: { "content-type": contentType }
        })
        expect(reply.status, contentType).toBe(200)
      }
      // A GET's Content-Type names no body: it is ignored.
      const read = yield* request("GET", "/products/1", { headers: { "content-type": "text/plain" } })
      expect(read.status).toBe(200)
    }).pipe(Effect.provide(layerServer())))

  it.live("JSON nested 10,000 levels deep is 400, not a stack overflow", () =>
    Effect.gen(function*() {
      yield* kettle
      const alice = yield* userToken(1)
      const before = yield* databaseSnapshot
      const depth = 10_000
      const deepArray = "[".repeat(depth) + "]".repeat(depth)
      const deepObject = "{\"a\":".repeat(depth) + "1" + "}".repeat(depth)
      const bodies = [
        `{"stock":${deepArray}}`,
        `{"name":${deepObject}}`,
        deepArray,
        deepObject,
        `{"delta":${deepArray}}`,
        `{"ttlSeconds":${deepObject}}`
      ]
      const endpoints: ReadonlyArray<readonly [string, string, string]> = [
        ["POST", "/products/1/notifications/re-stock", asAdmin.token],
        ["PUT", "/admin/products/1", asAdmin.token],
        ["PUT", "/admin/products/1/stock", asAdmin.token],
        ["POST", "/admin/products/1/stock/adjustments", asAdmin.token],
        ["POST", "/admin/users/1/token", asAdmin.token],
        ["PUT", "/products/1/subscriptions/1", alice]
      ]
      for (const [method, path, token] of endpoints) {
        for (const body of bodies) {
          expect(body.length).toBeLessThan(64 * 1024)
          const label = `${method} ${path} ${body.slice(0, 12)}…`
          const reply = yield* request(method, path, { token, body })
          expect(reply.status, label).toBe(400)
          expect(reply.body, label).toMatchObject({ _tag: "BadRequest" })
          expect(reply.body.message, label).toMatch(/nested/)
        }
      }
      // Nesting within the bound still reaches the schema, which names the field.
      const shallow = yield* request("PUT", "/admin/products/1/stock", { ...asAdmin, body: { stock: [[[1]]] } })
      expect(shallow.status).toBe(400)
      expect(shallow.body.message).toMatch(/stock/)
      expect(yield* databaseSnapshot).toEqual(before)
      expect(yield* stockOfKettle).toEqual({ cached: 5, stored: 5 })
      expect((yield* request("GET", "/health/ready")).status).toBe(200)
    }).pipe(Effect.provide(layerServer())))

  it.live("a chunked body over 64 KiB is a JSON 413, not a reset connection", () =>
    Effect.gen(function*() {
      yield* kettle
      const server = yield* TestServer
      const before = yield* databaseSnapshot
      for (const size of [64 * 1024 + 1, 100 * 1024, 1024 * 1024]) {
        const body = JSON.stringify({ name: "x".repeat(size) })
        const reply = yield* Effect.promise(() => chunkedRequest(server.port, "PUT", "/admin/products/1", body))
        expect(reply.status, `${size} bytes`).toBe(413)
        expect(JSON.parse(reply.body), `${size} bytes`).toMatchObject({ _tag: "PayloadTooLarge", maxBytes: 65536 })
      }
      const restock = yield* Effect.promise(() =>
        chunkedRequest(server.port, "POST", "/products/1/notifications/re-stock", JSON.stringify({ stock: 3, pad: "x".repeat(70_000) }))
      )
      expect(restock.status).toBe(413)
      expect(yield* databaseSnapshot).toEqual(before)
      expect(yield* stockOfKettle).toEqual({ cached: 5, stored: 5 })

      // A chunked body within the limit is read like any other.
      const small = yield* Effect.promise(() =>
        chunkedRequest(server.port, "PUT", "/admin/products/1", JSON.stringify({ name: "Chunked kettle", notes: "x".repeat(30 * 1024) }))
      )
      expect(small.status).toBe(200)
      expect(JSON.parse(small.body).name).toBe("Chunked kettle")
    }).pipe(Effect.provide(layerServer())))

  it.live("a path id of any length is 400 when it is not an id, never a missing route", () =>
    Effect.gen(function*() {
      yield* kettle
      const alice = yield* userToken(1)
      const before = yield* databaseSnapshot
      for (const length of [101, 500, 4000]) {
        const long = "1".repeat(length)
        const cases: ReadonlyArray<readonly [string, string, string]> = [
          ["GET", `/products/${long}`, asAdmin.token],
          ["PUT", `/admin/products/${long}/stock`, asAdmin.token],
          ["GET", `/products/1/notifications/${long}`, asAdmin.token],
          ["PUT", `/products/1/subscriptions/${long}`, alice],
          ["GET", `/users/${long}/notifications/stream`, alice]
        ]
        for (const [method, path, token] of cases) {
          const reply = yield* request(method, path, { token, body: method === "PUT" && path.endsWith("stock") ? { stock: 1 } : undefined })
          expect(reply.status, `${method} ${length} digits`).toBe(400)
          expect(reply.body, `${method} ${length} digits`).toMatchObject({ _tag: "BadRequest" })
          expect(reply.body.message).toMatch(/expected a positive integer id/)
        }
      }
      expect(yield* databaseSnapshot).toEqual(before)
      expect((yield* (yield* Repo).getProduct(ProductId.make(1)))._tag).toBe("Some")
    }).pipe(Effect.provide(layerServer())))
})
