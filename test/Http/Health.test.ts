/**
 * Probes and documentation: liveness, readiness with its dependencies, and
 * `/openapi.json` and `/docs` served offline to anyone.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { layerServer, Outage, request } from "../support/Http.js"

describe("health", () => {
  it.live("live is always 200; ready is 200 while the database and the stock cache answer", () =>
    Effect.gen(function*() {
      const live = yield* request("GET", "/health/live")
      expect(live.status).toBe(200)
      expect(live.body).toEqual({ status: "ok" })
      const ready = yield* request("GET", "/health/ready")
      expect(ready.status).toBe(200)
      expect(ready.body).toEqual({ status: "ok", database: "up", stockCache: "up" })
    }).pipe(Effect.provide(layerServer())))

  it.live("ready is 503 naming what is down, whether it fails or does not answer within a second", () =>
    Effect.gen(function*() {
      const outage = yield* Outage
      yield* outage.stockCache("failing")
      const cacheDown = yield* request("GET", "/health/ready")
      expect(cacheDown.status).toBe(503)
      expect(cacheDown.body).toMatchObject({ _tag: "NotReady", database: "up", stockCache: "down" })
      expect(cacheDown.body.message).toMatch(/stock cache/)

      yield* outage.stockCache("up")
      yield* outage.database("hanging")
      const started = Date.now()
      const databaseDown = yield* request("GET", "/health/ready")
      expect(Date.now() - started).toBeLessThan(3000)
      expect(databaseDown.status).toBe(503)
      expect(databaseDown.body).toMatchObject({ _tag: "NotReady", database: "down", stockCache: "up" })
      expect(databaseDown.body.message).toMatch(/database/)

      // Liveness does not depend on them.
      expect((yield* request("GET", "/health/live")).status).toBe(200)
      yield* outage.database("up")
      expect((yield* request("GET", "/health/ready")).status).toBe(200)
    }).pipe(Effect.provide(layerServer())))
})

/** SPEC §4's endpoints, as OpenAPI writes them; all but `GET /` and `GET /metrics`. */
const specEndpoints = [
  ["post", "/products/{productId}/notifications/re-stock"],
  ["post", "/admin/products/{productId}/notifications/re-stock"],
  ["get", "/products/{productId}/notifications"],
  ["get", "/products/{productId}/notifications/{restockRound}"],
  ["get", "/products/{productId}/notifications/{restockRound}/recipients"],
  ["get", "/admin/products/{productId}/notifications/stream"],
  ["put", "/admin/products/{productId}"],
  ["get", "/products/{productId}"],
  ["post", "/unsubscribe/{token}"],
  ["get", "/unsubscribe/{token}"],
  ["get", "/admin/products"],
  ["put", "/admin/products/{productId}/stock"],
  ["post", "/admin/products/{productId}/stock/adjustments"],
  ["put", "/products/{productId}/subscriptions/{userId}"],
  ["delete", "/products/{productId}/subscriptions/{userId}"],
  ["get", "/users/{userId}/notifications/stream"],
  ["post", "/admin/users/{userId}/token"],
  ["get", "/health/live"],
  ["get", "/health/ready"]
] as const

describe("documentation", () => {
  it.live("/openapi.json is public and describes every endpoint, its errors and its security", () =>
    Effect.gen(function*() {
      const reply = yield* request("GET", "/openapi.json")
      expect(reply.status).toBe(200)
      const spec = reply.body
      expect(spec.openapi).toMatch(/^3\./)
      const documented = Object.entries<Record<string, unknown>>(spec.paths).flatMap(([path, operations]) =>
        Object.keys(operations).map((method) => `${method} ${path}`)
      )
      expect(documented.sort()).toEqual(specEndpoints.map(([method, path]) => `${method} ${path}`).sort())

      const restock = spec.paths["/products/{productId}/notifications/re-stock"].post
      expect(Object.keys(restock.responses)).toEqual(expect.arrayContaining(["202", "400", "401", "403", "404", "409"]))
      expect(restock.security).toEqual([{ bearer: [] }])
      expect(restock.requestBody.required).toBe(false)
      const stream = spec.paths["/users/{userId}/notifications/stream"].get
      expect(Object.keys(stream.responses["200"].content)).toEqual(["text/event-stream"])
      expect(stream.security).toEqual([{ bearer: [] }, { accessToken: [] }])
      expect(spec.components.securitySchemes.accessToken).toMatchObject({ type: "apiKey", in: "query", name: "access_token" })
      expect(spec.paths["/products/{productId}"].get.security).toEqual([])
      // The unsubscribe link's token is its only credential.
      expect(spec.paths["/unsubscribe/{token}"].post.security).toEqual([])
      expect(spec.paths["/unsubscribe/{token}"].get.security).toEqual([])
    }).pipe(Effect.provide(layerServer())))

  it.live("/docs is public and loads nothing from elsewhere", () =>
    Effect.gen(function*() {
      const reply = yield* request("GET", "/docs")
      expect(reply.status).toBe(200)
      expect(reply.headers.get("content-type")).toMatch(/^text\/html/)
      expect(reply.text).toContain("SwaggerUIBundle")
      expect(reply.text).toContain("/products/{productId}/notifications/re-stock")
      // No script, stylesheet or image is fetched from another origin.
      expect(reply.text).not.toMatch(/<(script|link|img)[^>]+(src|href)=["']?(https?:)?\/\//i)
    }).pipe(Effect.provide(layerServer())))
})
