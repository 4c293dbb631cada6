/**
 * Products over HTTP: creating and reading them, setting and adjusting stock
 * through the stock cache, listing them by page; and every malformed request
 * refused with 400 before it changes anything (the edge's own holes: Edge.test.ts).
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ProductId, UserId } from "../../src/Domain/Ids.js"
import { Repo } from "../../src/Repo/Repo.js"
import { StockCache } from "../../src/StockCache/StockCache.js"
import * as RedisTest from "../support/Redis.js"
import { asAdmin, databaseSnapshot, eventually, layerServer, layerServerOnRedis, request } from "../support/Http.js"

/** The `stock_status` column as stored. */
const statusColumn = (id: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ status: string }>`SELECT stock_status AS status FROM product WHERE id = ${id}`.pipe(
      Effect.map((rows) => rows[0]?.status),
      Effect.orDie
    ))

const product = (id: number, name: string, stock: number) =>
  request("PUT", `/admin/products/${id}`, { ...asAdmin, body: { name, stock } })

describe("products", () => {
  it.live("an admin creates a product, anyone reads it", () =>
    Effect.gen(function*() {
      const created = yield* product(1, "Blue kettle", 5)
      expect(created.status).toBe(200)
      expect(created.body).toEqual({
        id: 1,
        name: "Blue kettle",
        restockRound: 0,
        stock: 5,
        stockStatus: "IN_STOCK",
        minimumStock: 0,
        notifyPerUnit: null
      })

      const read = yield* request("GET", "/products/1")
      expect(read.status).toBe(200)
      expect(read.headers.get("content-type")).toMatch(/^application\/json/)
      expect(read.body).toEqual(created.body)
    }).pipe(Effect.provide(layerServer())))

  it.live("a product is created with defaults, then updated field by field", () =>
    Effect.gen(function*() {
      const created = yield* request("PUT", "/admin/products/42", { ...asAdmin, body: {} })
      expect(created.status).toBe(200)
      expect(created.body).toMatchObject({ id: 42, restockRound: 0, stock: 0, stockStatus: "OUT_OF_STOCK" })

      const renamed = yield* request("PUT", "/admin/products/42", { ...asAdmin, body: { name: "Teapot" } })
      expect(renamed.body).toMatchObject({ id: 42, name: "Teapot", stock: 0 })
      const restocked = yield* request("PUT", "/admin/products/42", { ...asAdmin, body: { stock: 3 } })
      expect(restocked.body).toMatchObject({ id: 42, name: "Teapot", stock: 3, stockStatus: "IN_STOCK" })
    }).pipe(Effect.provide(layerServer())))

  it.live("minimum stock and the per-unit cap are set, kept, listed and cleared; a field left out stays", () =>
    Effect.gen(function*() {
      const created = yield* request("PUT", "/admin/products/1", {
        ...asAdmin,
        body: { name: "Kettle", stock: 10, minimumStock: 2, notifyPerUnit: 3 }
      })
      expect(created.status).toBe(200)
      expect(created.body).toEqual({
        id: 1,
        name: "Kettle",
        restockRound: 0,
        stock: 10,
        stockStatus: "IN_STOCK",
        minimumStock: 2,
        notifyPerUnit: 3
      })
      expect((yield* request("GET", "/products/1")).body).toEqual(created.body)

      const renamed = yield* request("PUT", "/admin/products/1", { ...asAdmin, body: { name: "Steel kettle" } })
      expect(renamed.body).toMatchObject({ name: "Steel kettle", minimumStock: 2, notifyPerUnit: 3 })
      const restocked = yield* request("PUT", "/admin/products/1/stock", { ...asAdmin, body: { stock: 8 } })
      expect(restocked.body).toMatchObject({ stock: 8, minimumStock: 2, notifyPerUnit: 3 })

      const uncapped = yield* request("PUT", "/admin/products/1", { ...asAdmin, body: { notifyPerUnit: null } })
      expect(uncapped.status).toBe(200)
      expect(uncapped.body).toMatchObject({ minimumStock: 2, notifyPerUnit: null, stock: 8 })
      const row = yield* (yield* Repo).getProduct(ProductId.make(1))
      expect(row._tag === "Some" && [row.value.minimumStock, row.value.notifyPerUnit]).toEqual([2, null])

      const listed = yield* request("GET", "/admin/products", asAdmin)
      expect(listed.body.items[0]).toMatchObject({ id: 1, minimumStock: 2, notifyPerUnit: null })
    }).pipe(Effect.provide(layerServer())))

  it.live("stockStatus honours the minimum stock: at or below it the product reads OUT_OF_STOCK", () =>
    Effect.gen(function*() {
      const held = yield* request("PUT", "/admin/products/1", { ...asAdmin, body: { stock: 3, minimumStock: 3 } })
      expect(held.body).toMatchObject({ stock: 3, minimumStock: 3, stockStatus: "OUT_OF_STOCK" })
      const delivered = yield* request("POST", "/admin/products/1/stock/adjustments", { ...asAdmin, body: { delta: 1 } })
      expect(delivered.body).toMatchObject({ stock: 4, stockStatus: "IN_STOCK" })
      const sold = yield* request("POST", "/admin/products/1/stock/adjustments", { ...asAdmin, body: { delta: -1 } })
      expect(sold.body).toMatchObject({ stock: 3, stockStatus: "OUT_OF_STOCK" })
      expect((yield* request("GET", "/products/1")).body).toMatchObject({ stock: 3, stockStatus: "OUT_OF_STOCK" })
      expect((yield* request("PUT", "/admin/products/1/stock", { ...asAdmin, body: { stock: 9 } })).body)
        .toMatchObject({ stockStatus: "IN_STOCK" })
      // Raising the minimum past the stock sells the product out, lowering it brings it back.
      expect((yield* request("PUT", "/admin/products/1", { ...asAdmin, body: { minimumStock: 9 } })).body)
        .toMatchObject({ stock: 9, stockStatus: "OUT_OF_STOCK" })
      expect((yield* request("GET", "/admin/products", asAdmin)).body.items[0]).toMatchObject({ stockStatus: "OUT_OF_STOCK" })
      expect(yield* statusColumn(1)).toBe("OUT_OF_STOCK")
      expect((yield* request("PUT", "/admin/products/1", { ...asAdmin, body: { minimumStock: 0 } })).body)
        .toMatchObject({ stock: 9, stockStatus: "IN_STOCK" })
      expect(yield* statusColumn(1)).toBe("IN_STOCK")
    }).pipe(Effect.provide(layerServer())))

  it.live("stock set over HTTP goes through the stock cache, and the database agrees", () =>
    Effect.gen(function*() {
      yield* product(1, "Kettle", 5)
      const set = yield* request("PUT", "/admin/products/1/stock", { ...asAdmin, body: { stock: 12 } })
      expect(set.status).toBe(200)
      expect(set.body).toMatchObject({ id: 1, stock: 12, stockStatus: "IN_STOCK" })
      expect(yield* (yield* StockCache).get(ProductId.make(1))).toBe(12)
      const row = yield* (yield* Repo).getProduct(ProductId.make(1))
      expect(row._tag === "Some" && row.value.stock).toBe(12)

      const zero = yield* request("PUT", "/admin/products/1/stock", { ...asAdmin, body: { stock: 0 } })
      expect(zero.body).toMatchObject({ stock: 0, stockStatus: "OUT_OF_STOCK" })
    }).pipe(Effect.provide(layerServer())))

  it.live("adjustments add atomically and never go below zero", () =>
    Effect.gen(function*() {
      yield* product(1, "Kettle", 5)
      const sold = yield* request("POST", "/admin/products/1/stock/adjustments", { ...asAdmin, body: { delta: -2 } })
      expect(sold.status).toBe(200)
      expect(sold.body).toMatchObject({ stock: 3, stockStatus: "IN_STOCK" })

      const concurrent = yield* Effect.all(
        Array.from({ length: 20 }, () =>
          request("POST", "/admin/products/1/stock/adjustments", { ...asAdmin, body: { delta: 1 } })),
        { concurrency: "unbounded" }
      )
      expect(concurrent.every((reply) => reply.status === 200)).toBe(true)
      expect((yield* request("GET", "/products/1")).body.stock).toBe(23)

      const oversold = yield* request("POST", "/admin/products/1/stock/adjustments", {
        ...asAdmin,
        body: { delta: -100 }
      })
      expect(oversold.body).toMatchObject({ stock: 0, stockStatus: "OUT_OF_STOCK" })
    }).pipe(Effect.provide(layerServer())))

  it.live("a stock an order system writes to Redis is what GET answers, and product.stock follows it", () =>
    Effect.gen(function*() {
      yield* product(1, "Kettle", 5)
      // What an order system does, by the README's contract: change the key, then PUBLISH the id.
      const prefix = yield* RedisTest.TestPrefix
      const redis = yield* RedisTest.rawClient
      const stored = Effect.map(Effect.orDie((yield* Repo).getProduct(ProductId.make(1))), (row) =>
        row._tag === "Some" ? row.value.stock : undefined)
      yield* Effect.promise(() => redis.set(`${prefix}stock:1`, "9"))
      yield* Effect.promise(() => redis.publish(`${prefix}stock-changed`, "1"))
      expect((yield* request("GET", "/products/1")).body).toMatchObject({ stock: 9, stockStatus: "IN_STOCK" })
      yield* eventually("product.stock to follow the key", stored, (stock) => stock === 9, "2 seconds")

      yield* Effect.promise(() => redis.decrby(`${prefix}stock:1`, 9))
      yield* Effect.promise(() => redis.publish(`${prefix}stock-changed`, "1"))
      expect((yield* request("GET", "/products/1")).body).toMatchObject({ stock: 0, stockStatus: "OUT_OF_STOCK" })
      yield* eventually("product.stock to follow the key", stored, (stock) => stock === 0, "2 seconds")

      // A key that is gone (Redis restarted empty) is reloaded from product.stock, never read as 0.
      yield* Effect.promise(() => redis.set(`${prefix}stock:1`, "4"))
      yield* Effect.promise(() => redis.publish(`${prefix}stock-changed`, "1"))
      yield* eventually("product.stock to follow the key", stored, (stock) => stock === 4, "2 seconds")
      yield* Effect.promise(() => redis.del(`${prefix}stock:1`))
      expect((yield* request("GET", "/products/1")).body).toMatchObject({ stock: 4, stockStatus: "IN_STOCK" })
    }).pipe(Effect.provide(layerServerOnRedis()), Effect.scoped))

  it.live("the admin list pages by id with subscribers and the latest round", () =>
    Effect.gen(function*() {
      for (const id of [3, 1, 2, 5, 4]) yield* product(id, `Product ${id}`, id)
      const repo = yield* Repo
      yield* repo.subscribe(ProductId.make(2), UserId.make(10))
      yield* repo.subscribe(ProductId.make(2), UserId.make(11))
      yield* repo.subscribe(ProductId.make(3), UserId.make(10))
      yield* repo.unsubscribe(ProductId.make(3), UserId.make(10))

      const first = yield* request("GET", "/admin/products?limit=2", asAdmin)
      expect(first.status).toBe(200)
      expect(first.body.items.map((item: any) => item.id)).toEqual([1, 2])
      expect(first.body.items[1]).toEqual({
        id: 2,
        name: "Product 2",
        restockRound: 0,
        stock: 2,
        stockStatus: "IN_STOCK",
        minimumStock: 0,
        notifyPerUnit: null,
        activeSubscribers: 2,
        latestRound: null
      })
      expect(first.body.nextAfterId).toBe(2)

      const second = yield* request("GET", `/admin/products?afterId=${first.body.nextAfterId}&limit=2`, asAdmin)
      expect(second.body.items.map((item: any) => item.id)).toEqual([3, 4])
      expect(second.body.items[0].activeSubscribers).toBe(0)
      const last = yield* request("GET", `/admin/products?afterId=${second.body.nextAfterId}&limit=2`, asAdmin)
      expect(last.body.items.map((item: any) => item.id)).toEqual([5])
      expect(last.body.nextAfterId).toBeNull()

      const everything = yield* request("GET", "/admin/products", asAdmin)
      expect(everything.body.items).toHaveLength(5)
    }).pipe(Effect.provide(layerServer())))

  it.live("the OpenAPI document shows minimum stock, the per-unit cap and a round's wait", () =>
    Effect.gen(function*() {
      const document = (yield* request("GET", "/openapi.json")).body
      const schemas = document.components.schemas
      const refOf = (property: any): string | undefined =>
        property.$ref ?? property.anyOf?.find((option: any) => option.$ref !== undefined)?.$ref
      const nullable = (property: any): boolean => property.anyOf?.some((option: any) => option.type === "null") ?? false

      expect(schemas.Product.required).toEqual(expect.arrayContaining(["minimumStock", "notifyPerUnit"]))
      expect(refOf(schemas.Product.properties.minimumStock)).toBe("#/components/schemas/MinimumStock")
      expect(refOf(schemas.Product.properties.notifyPerUnit)).toBe("#/components/schemas/NotifyPerUnit")
      expect(nullable(schemas.Product.properties.notifyPerUnit)).toBe(true)
      expect(schemas.MinimumStock).toMatchObject({ minimum: 0 })
      expect(schemas.NotifyPerUnit).toMatchObject({ minimum: 1 })
      expect(schemas.ProductSummary.required).toEqual(expect.arrayContaining(["minimumStock", "notifyPerUnit"]))

      const upsert = document.paths["/admin/products/{productId}"].put
      expect(upsert.requestBody.content["application/json"].schema.$ref).toBe("#/components/schemas/ProductUpsert")
      expect(Object.keys(schemas.ProductUpsert.properties)).toEqual(["name", "stock", "minimumStock", "notifyPerUnit"])
      expect(schemas.ProductUpsert.required).toEqual([])
      expect(nullable(schemas.ProductUpsert.properties.notifyPerUnit)).toBe(true)

      expect(schemas.Round.required).toContain("waitingUntil")
      expect(nullable(schemas.Round.properties.waitingUntil)).toBe(true)
      expect(schemas.Round.properties.waitingUntil.description).toMatch(/send window/)
    }).pipe(Effect.provide(layerServer())))

  it.live("unknown products are 404 ProductNotFound", () =>
    Effect.gen(function*() {
      const before = yield* databaseSnapshot
      for (
        const [method, path, body] of [
          ["GET", "/products/77", undefined],
          ["PUT", "/admin/products/77/stock", { stock: 1 }],
          ["POST", "/admin/products/77/stock/adjustments", { delta: 1 }]
        ] as const
      ) {
        const reply = yield* request(method, path, { ...asAdmin, body })
        expect(reply.status, `${method} ${path}`).toBe(404)
        expect(reply.body).toMatchObject({ _tag: "ProductNotFound", productId: 77 })
        expect(reply.body.message).toContain("77")
      }
      expect(yield* databaseSnapshot).toEqual(before)
    }).pipe(Effect.provide(layerServer())))
})

/** Every endpoint with an id in its path, `{id}` standing for the id under test. */
const idEndpoints: ReadonlyArray<readonly [method: string, path: string, body?: unknown]> = [
  ["GET", "/products/{id}"],
  ["PUT", "/admin/products/{id}", { name: "x" }],
  ["PUT", "/admin/products/{id}/stock", { stock: 1 }],
  ["POST", "/admin/products/{id}/stock/adjustments", { delta: 1 }],
  ["POST", "/products/{id}/notifications/re-stock"],
  ["POST", "/admin/products/{id}/notifications/re-stock"],
  ["GET", "/products/{id}/notifications"],
  ["GET", "/products/{id}/notifications/{id}"],
  ["GET", "/products/1/notifications/{id}"],
  ["GET", "/products/{id}/notifications/1/recipients"],
  ["GET", "/products/1/notifications/{id}/recipients"],
  ["GET", "/admin/products/{id}/notifications/stream"],
  ["PUT", "/products/{id}/subscriptions/1"],
  ["PUT", "/products/1/subscriptions/{id}"],
  ["DELETE", "/products/{id}/subscriptions/1"],
  ["DELETE", "/products/1/subscriptions/{id}"],
  ["POST", "/admin/users/{id}/token"],
  ["GET", "/users/{id}/notifications/stream"]
]

const badIds = [
  "abc",
  "0",
  "-1",
  "1e3",
  "1.5",
  "01",
  "+1",
  "0x10",
  "9007199254740992", // 2^53: not a safe integer
  "99999999999999999999",
  "%201"
]

describe("bad input is 400 and changes nothing", () => {
  it.live("ids in paths that are not positive safe integers", () =>
    Effect.gen(function*() {
      yield* product(1, "Kettle", 5)
      const before = yield* databaseSnapshot
      for (const [method, template, body] of idEndpoints) {
        for (const id of badIds) {
          const path = template.replace("{id}", id)
          const reply = yield* request(method, path, { ...asAdmin, body })
          expect(reply.status, `${method} ${path}`).toBe(400)
          expect(reply.body._tag, `${method} ${path}`).toBe("BadRequest")
          expect(reply.body.message).toMatch(/expected a positive integer id/)
        }
      }
      // The largest safe integer is a valid id (of a product that does not exist).
      const largest = yield* request("GET", `/products/${Number.MAX_SAFE_INTEGER}`)
      expect(largest.status).toBe(404)
      expect(yield* databaseSnapshot).toEqual(before)
    }).pipe(Effect.provide(layerServer())), 60_000)

  it.live("stock that is negative, fractional, too large or not a number", () =>
    Effect.gen(function*() {
      yield* product(1, "Kettle", 5)
      const before = yield* databaseSnapshot
      const cases: ReadonlyArray<readonly [string, string, unknown]> = [
        ["PUT", "/admin/products/1/stock", { stock: -1 }],
        ["PUT", "/admin/products/1/stock", { stock: 1.5 }],
        ["PUT", "/admin/products/1/stock", { stock: "3" }],
        ["PUT", "/admin/products/1/stock", { stock: 2 ** 31 }],
        ["PUT", "/admin/products/1/stock", { stock: null }],
        ["PUT", "/admin/products/1/stock", {}],
        ["PUT", "/admin/products/1/stock", [5]],
        ["PUT", "/admin/products/1", { stock: -5 }],
        ["PUT", "/admin/products/1", { name: "" }],
        ["PUT", "/admin/products/1", { name: "x".repeat(256) }],
        ["PUT", "/admin/products/1", { name: 7 }],
        ["PUT", "/admin/products/1", { minimumStock: -1 }],
        ["PUT", "/admin/products/1", { minimumStock: 1.5 }],
        ["PUT", "/admin/products/1", { minimumStock: "2" }],
        ["PUT", "/admin/products/1", { minimumStock: null }],
        ["PUT", "/admin/products/1", { minimumStock: 2 ** 31 }],
        ["PUT", "/admin/products/1", { minimumStock: true }],
        ["PUT", "/admin/products/1", { notifyPerUnit: 0 }],
        ["PUT", "/admin/products/1", { notifyPerUnit: -2 }],
        ["PUT", "/admin/products/1", { notifyPerUnit: 2.5 }],
        ["PUT", "/admin/products/1", { notifyPerUnit: "3" }],
        ["PUT", "/admin/products/1", { notifyPerUnit: 2 ** 31 }],
        ["PUT", "/admin/products/1", { notifyPerUnit: [1] }],
        // One bad field refuses the whole body: the good one is not written either.
        ["PUT", "/admin/products/1", { name: "Renamed", minimumStock: -1 }],
        ["PUT", "/admin/products/1", { stock: 9, notifyPerUnit: 0 }],
        ["POST", "/admin/products/1/stock/adjustments", { delta: 0.5 }],
        ["POST", "/admin/products/1/stock/adjustments", { delta: "1" }],
        ["POST", "/admin/products/1/stock/adjustments", {}],
        ["POST", "/products/1/notifications/re-stock", { stock: -1 }],
        ["POST", "/products/1/notifications/re-stock", { stock: 2.5 }],
        ["POST", "/admin/users/1/token", { ttlSeconds: 0 }],
        ["POST", "/admin/users/1/token", { ttlSeconds: 1.5 }]
      ]
      for (const [method, path, body] of cases) {
        const reply = yield* request(method, path, { ...asAdmin, body })
        const label = `${method} ${path} ${JSON.stringify(body)}`
        expect(reply.status, label).toBe(400)
        expect(reply.body._tag, label).toBe("BadRequest")
        expect(reply.body.message, label).toMatch(/^invalid request: /)
      }
      expect(yield* databaseSnapshot).toEqual(before)
      expect(yield* (yield* StockCache).get(ProductId.make(1))).toBe(5)
    }).pipe(Effect.provide(layerServer())))

  it.live("malformed JSON, a body that is not JSON, an oversized body", () =>
    Effect.gen(function*() {
      yield* product(1, "Kettle", 5)
      const before = yield* databaseSnapshot

      const malformed = yield* request("PUT", "/admin/products/1/stock", { ...asAdmin, body: "{\"stock\": 3" })
      expect(malformed.status).toBe(400)
      expect(malformed.body._tag).toBe("BadRequest")
      expect(malformed.body.message).toMatch(/not valid JSON/)

      const form = yield* request("PUT", "/admin/products/1/stock", {
        ...asAdmin,
        body: "stock=3",
        headers: { "content-type": "application/x-www-form-urlencoded" }
      })
      expect(form.status).toBe(415)
      expect(form.body._tag).toBe("UnsupportedMediaType")

      const oversized = yield* request("PUT", "/admin/products/1", {
        ...asAdmin,
        body: { name: "Kettle", padding: "x".repeat(100 * 1024) }
      })
      expect(oversized.status).toBe(413)
      expect(oversized.body).toMatchObject({ _tag: "PayloadTooLarge", maxBytes: 65536 })

      expect(yield* databaseSnapshot).toEqual(before)

    }).pipe(Effect.provide(layerServer())))

  it.live("paging parameters outside their range", () =>
    Effect.gen(function*() {
      yield* product(1, "Kettle", 5)
      for (
        const query of [
          "limit=0",
          "limit=1001",
          "limit=-1",
          "limit=abc",
          "limit=1e2",
          "limit=10.5",
          "afterId=0",
          "afterId=-3",
          "afterId=x",
          "limit=1&limit=2"
        ]
      ) {
        for (const path of ["/admin/products", "/products/1/notifications/1/recipients"]) {
          const reply = yield* request("GET", `${path}?${query}`, asAdmin)
          expect(reply.status, `${path}?${query}`).toBe(400)
          expect(reply.body._tag).toBe("BadRequest")
        }
      }
      expect((yield* request("GET", "/admin/products?limit=1000", asAdmin)).status).toBe(200)
      expect((yield* request("GET", "/admin/products?limit=1", asAdmin)).status).toBe(200)
    }).pipe(Effect.provide(layerServer())))

  it.live("an unknown route is a JSON 404", () =>
    Effect.gen(function*() {
      const reply = yield* request("GET", "/no/such/thing")
      expect(reply.status).toBe(404)
      expect(reply.body).toMatchObject({ _tag: "NotFound" })
      expect(reply.body.message).toContain("/no/such/thing")
    }).pipe(Effect.provide(layerServer())))
})
