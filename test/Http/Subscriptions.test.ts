/**
 * Subscriptions over HTTP: a user subscribes and unsubscribes themself
 * (idempotently, keeping their place in line), the admin may act for anyone,
 * and no user acts for another.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { ProductId } from "../../src/Domain/Ids.js"
import { asAdmin, databaseSnapshot, eventually, layerServer, request, userToken } from "../support/Http.js"
import { countActiveSubscribers } from "../support/Stored.js"

const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/

/** How many users the dispatch would notify. */
const subscribers = countActiveSubscribers(ProductId.make(1))

describe("subscriptions", () => {
  it.live("a user subscribes and unsubscribes themself, idempotently", () =>
    Effect.gen(function*() {
      yield* request("PUT", "/admin/products/1", { ...asAdmin, body: { name: "Kettle", stock: 0 } })
      const token = yield* userToken(5)

      const subscribed = yield* request("PUT", "/products/1/subscriptions/5", { token })
      expect(subscribed.status).toBe(200)
      expect(subscribed.body).toEqual({ productId: 1, userId: 5, active: true, subscribedAt: expect.stringMatching(iso) })
      const again = yield* request("PUT", "/products/1/subscriptions/5", { token })
      expect(again.status).toBe(200)
      expect(again.body).toEqual(subscribed.body)
      expect(yield* subscribers).toBe(1)

      const removed = yield* request("DELETE", "/products/1/subscriptions/5", { token })
      expect(removed.status).toBe(204)
      expect(removed.text).toBe("")
      expect((yield* request("DELETE", "/products/1/subscriptions/5", { token })).status).toBe(204)
      // Never subscribed: still fine.
      expect((yield* request("DELETE", "/products/1/subscriptions/6", asAdmin)).status).toBe(204)
      expect(yield* subscribers).toBe(0)
    }).pipe(Effect.provide(layerServer())))

  it.live("subscribing again keeps the original place in line", () =>
    Effect.gen(function*() {
      yield* request("PUT", "/admin/products/1", { ...asAdmin, body: { name: "Kettle", stock: 10 } })
      for (const user of [1, 2, 3]) yield* request("PUT", `/products/1/subscriptions/${user}`, asAdmin)
      yield* request("DELETE", "/products/1/subscriptions/1", asAdmin)
      yield* request("PUT", "/products/1/subscriptions/1", asAdmin)

      yield* request("POST", "/products/1/notifications/re-stock", asAdmin)
      yield* eventually(
        "round 1 to end",
        Effect.map(request("GET", "/products/1/notifications/1", asAdmin), (reply) => reply.body.status as string),
        (status) => status !== "IN_PROGRESS"
      )
      const recipients = yield* request("GET", "/products/1/notifications/1/recipients", asAdmin)
      expect(recipients.body.items.map((item: any) => item.userId)).toEqual([1, 2, 3])
    }).pipe(Effect.provide(layerServer())))

  it.live("an unknown product is 404; another user's subscription is 403; neither changes anything", () =>
    Effect.gen(function*() {
      yield* request("PUT", "/admin/products/1", { ...asAdmin, body: { name: "Kettle" } })
      const token = yield* userToken(5)
      const before = yield* databaseSnapshot
      for (const method of ["PUT", "DELETE"]) {
        const unknown = yield* request(method, "/products/2/subscriptions/5", { token })
        expect(unknown.status, method).toBe(404)
        expect(unknown.body._tag).toBe("ProductNotFound")
        const other = yield* request(method, "/products/1/subscriptions/6", { token })
        expect(other.status, method).toBe(403)
        expect(other.body._tag).toBe("Forbidden")
        expect(other.body.message).toMatch(/user 5 cannot act for user 6/)
      }
      expect(yield* databaseSnapshot).toEqual(before)
    }).pipe(Effect.provide(layerServer())))
})
