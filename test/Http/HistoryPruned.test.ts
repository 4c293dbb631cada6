/**
 * Gaps are said, never hidden (SPEC §3.16), over real HTTP: after the
 * retention pruned some deliveries, a user stream reconnecting below the
 * watermark gets `gap` first, then the replay of what is left with no
 * duplicate, then live ones; one at or above the watermark gets no `gap`;
 * the recipients of a pruned round answer 410 `HistoryPruned`, documented in
 * the OpenAPI document.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { Restock } from "../../src/Dispatch/Restock.js"
import { ProductId } from "../../src/Domain/Ids.js"
import { dialectOf } from "../../src/Repo/Dialect.js"
import * as Pruner from "../../src/Retention/Pruner.js"
import { asAdmin, layerServer, openStream, request, userToken } from "../support/Http.js"

const hour = 3_600_000

/** Products 1–3, users 1 and 2 subscribed to each, each restocked once (round 1, COMPLETED). */
const scene = Effect.gen(function*() {
  const restock = yield* Restock
  for (const id of [1, 2, 3]) {
    yield* request("PUT", `/admin/products/${id}`, { ...asAdmin, body: { name: `Product ${id}`, stock: 100 } })
    for (const user of [1, 2]) yield* request("PUT", `/products/${id}/subscriptions/${user}`, asAdmin)
  }
  for (const id of [1, 2, 3]) {
    const round = yield* restock.trigger(ProductId.make(id))
    yield* restock.awaitRound(round.productId, round.restockRound)
  }
}).pipe(Effect.orDie)

/** The ids of a user's deliveries of a product, from the table. */
const idsOf = (userId: number, productId?: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ id: number }>`SELECT id FROM product_user_notification_history
      WHERE user_id = ${userId} ${productId === undefined ? sql`` : sql`AND product_id = ${productId}`} ORDER BY id`).pipe(
    Effect.map((rows) => rows.map((row) => String(row.id))),
    Effect.orDie
  )

/** Ages product 1's records by two hours and runs a pass of a one-hour retention: they are pruned. */
const pruneProductOne = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const old = dialectOf(sql).timestamp(new Date(Date.now() - 2 * hour))
  yield* sql`UPDATE product_user_notification_history SET sent_at = ${old} WHERE product_id = 1`
  const watermark = yield* sql<{ id: number }>`SELECT MAX(id) AS id FROM product_user_notification_history WHERE product_id = 1`
  const pass = yield* (yield* Pruner.make(Pruner.settingsFor(Duration.hours(1)))).pass
  expect(pass).toMatchObject({ pruned: true, deleted: 2 })
  return Number(watermark[0]!.id)
}).pipe(Effect.orDie)

const stream = (userId: number, lastEventId: string) =>
  Effect.flatMap(userToken(userId), (token) =>
    openStream(`/users/${userId}/notifications/stream`, { token, headers: { "last-event-id": lastEventId } }))

/** Lets the server run a moment, on the real clock, to show that nothing more arrives. */
const settle = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 200)))

describe("after the retention pruned deliveries", () => {
  it.live("a stream reconnecting below the watermark gets `gap` first, then the replay with no duplicate, then live ones", () =>
    Effect.gen(function*() {
      yield* scene
      const before = yield* idsOf(1)
      expect(before).toHaveLength(3)
      const prunedThrough = yield* pruneProductOne
      const left = yield* idsOf(1)
      expect(left).toEqual(before.slice(1))

      const client = yield* stream(1, "0")
      const [gap, ...replayed] = yield* client.take(3)
      expect(gap!.event).toBe("gap")
      expect(JSON.parse(gap!.data)).toEqual({ prunedThrough })
      // Said without an id: the client's Last-Event-ID stays the last delivery it got.
      expect(gap!.id).toBeUndefined()
      expect(replayed.map((event) => [event.event, event.id])).toEqual(left.map((id) => ["restock", id]))

      // Then live deliveries, each once.
      const restock = yield* Restock
      const round = yield* restock.trigger(ProductId.make(2))
      yield* restock.awaitRound(round.productId, round.restockRound)
      const [live] = yield* client.take(1)
      expect(live!.id).toBe((yield* idsOf(1, 2)).at(-1))
      yield* settle
      expect(yield* client.drain).toEqual([])
    }).pipe(Effect.provide(layerServer()), Effect.scoped))

  it.live("a stream reconnecting at or above the watermark gets no `gap`, only what it missed", () =>
    Effect.gen(function*() {
      yield* scene
      const prunedThrough = yield* pruneProductOne
      const [second, third] = yield* idsOf(1)

      // Just below the watermark: a gap.
      const atOwnPruned = yield* stream(1, String(prunedThrough - 1))
      expect((yield* atOwnPruned.take(1))[0]!.event).toBe("gap")

      const atWatermark = yield* stream(1, String(prunedThrough))
      const fromWatermark = yield* atWatermark.take(2)
      expect(fromWatermark.map((event) => [event.event, event.id])).toEqual([["restock", second], ["restock", third]])

      const above = yield* stream(1, second!)
      expect((yield* above.take(1)).map((event) => [event.event, event.id])).toEqual([["restock", third]])
      yield* settle
      expect(yield* atWatermark.drain).toEqual([])
      expect(yield* above.drain).toEqual([])
    }).pipe(Effect.provide(layerServer()), Effect.scoped))

  it.live("the recipients of a pruned round answer 410 HistoryPruned; those of a round left whole still list", () =>
    Effect.gen(function*() {
      yield* scene
      yield* pruneProductOne
      const pruned = yield* request("GET", "/products/1/notifications/1/recipients", asAdmin)
      expect(pruned.status).toBe(410)
      expect(pruned.body).toMatchObject({ _tag: "HistoryPruned", productId: 1, restockRound: 1 })
      expect(pruned.body.message).toMatch(/pruned/)
      // The round itself is kept.
      expect((yield* request("GET", "/products/1/notifications/1", asAdmin)).body).toMatchObject({ status: "COMPLETED", sentCount: 2 })

      const whole = yield* request("GET", "/products/2/notifications/1/recipients", asAdmin)
      expect(whole.status).toBe(200)
      expect(whole.body.items.map((item: { userId: number }) => item.userId)).toEqual([1, 2])

      const openapi = yield* request("GET", "/openapi.json")
      const recipients = openapi.body.paths["/products/{productId}/notifications/{restockRound}/recipients"].get
      expect(Object.keys(recipients.responses)).toContain("410")
      expect(JSON.stringify(recipients.responses["410"])).toMatch(/HistoryPruned/)
    }).pipe(Effect.provide(layerServer()), Effect.scoped))
})
