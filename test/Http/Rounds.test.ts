/**
 * Restock rounds over HTTP, against the real dispatch engine: restock,
 * resume, read rounds and recipients, follow progress as a stream; and the
 * conflicts (`RoundInProgress`, `NothingToResume`) refused without changes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, TestClock } from "effect"
import { ProductId, RestockRound, UserId } from "../../src/Domain/Ids.js"
import * as Recording from "../../src/Notifier/Recording.js"
import { Repo } from "../../src/Repo/Repo.js"
import { asAdmin, databaseSnapshot, eventually, layerServer, openStream, request } from "../support/Http.js"

/** A product with users 1..n subscribed, in that order, over HTTP. */
const seed = (options: { readonly id?: number; readonly stock: number; readonly subscribers: number }) =>
  Effect.gen(function*() {
    const id = options.id ?? 1
    yield* request("PUT", `/admin/products/${id}`, { ...asAdmin, body: { name: `Product ${id}`, stock: options.stock } })
    for (let user = 1; user <= options.subscribers; user++) {
      const reply = yield* request("PUT", `/products/${id}/subscriptions/${user}`, asAdmin)
      expect(reply.status).toBe(200)
    }
    return id
  })

const round = (id: number, restockRound: number) =>
  Effect.map(request("GET", `/products/${id}/notifications/${restockRound}`, asAdmin), (reply) => reply.body)

/** Polls the round until it leaves `IN_PROGRESS`. */
const finished = (id: number, restockRound: number) =>
  eventually(`round ${restockRound} of product ${id} to end`, round(id, restockRound), (body) =>
    body.status !== "IN_PROGRESS", "20 seconds")

const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/

describe("restocking", () => {
  it.live("a restock opens round 1, answers 202 at once, and notifies every subscriber in order", () =>
    Effect.gen(function*() {
      yield* seed({ stock: 10, subscribers: 3 })
      const opened = yield* request("POST", "/products/1/notifications/re-stock", asAdmin)
      expect(opened.status).toBe(202)
      expect(opened.body).toMatchObject({
        productId: 1,
        restockRound: 1,
        status: "IN_PROGRESS",
        lastSentUserId: null,
        sentCount: 0,
        finishedAt: null,
        error: null,
        waitingUntil: null
      })
      expect(opened.body.startedAt).toMatch(iso)
      expect(opened.body.updatedAt).toMatch(iso)

      const done = yield* finished(1, 1)
      expect(done).toMatchObject({ status: "COMPLETED", sentCount: 3, lastSentUserId: 3, error: null })
      expect(done.finishedAt).toMatch(iso)
      expect((yield* request("GET", "/products/1")).body.restockRound).toBe(1)

      const delivered = yield* (yield* Recording.Recording).delivered
      expect(delivered.map((notification) => notification.userId)).toEqual([1, 2, 3])
    }).pipe(Effect.provide(layerServer())))

  it.live("a restock with a stock sets it first; with stock 0 the round ends sold out, sending nothing", () =>
    Effect.gen(function*() {
      yield* seed({ stock: 0, subscribers: 2 })
      const opened = yield* request("POST", "/products/1/notifications/re-stock", { ...asAdmin, body: { stock: 4 } })
      expect(opened.status).toBe(202)
      expect((yield* finished(1, 1)).status).toBe("COMPLETED")
      expect((yield* request("GET", "/products/1")).body.stock).toBe(4)

      const soldOut = yield* request("POST", "/products/1/notifications/re-stock", { ...asAdmin, body: { stock: 0 } })
      expect(soldOut.status).toBe(202)
      expect(soldOut.body.restockRound).toBe(2)
      expect(yield* finished(1, 2)).toMatchObject({ status: "CANCELED_BY_SOLD_OUT", sentCount: 0 })

      // An explicit null body is "no body".
      const empty = yield* request("POST", "/products/1/notifications/re-stock", { ...asAdmin, body: "null" })
      expect(empty.status).toBe(202)
      expect(empty.body.restockRound).toBe(3)
    }).pipe(Effect.provide(layerServer())))

  it.live("rounds are listed newest first, one round is read, recipients are paged in send order", () =>
    Effect.gen(function*() {
      yield* seed({ stock: 100, subscribers: 5 })
      for (const restockRound of [1, 2]) {
        yield* request("POST", "/products/1/notifications/re-stock", asAdmin)
        yield* finished(1, restockRound)
      }
      const rounds = yield* request("GET", "/products/1/notifications", asAdmin)
      expect(rounds.status).toBe(200)
      expect(rounds.body.map((round: any) => round.restockRound)).toEqual([2, 1])

      const first = yield* request("GET", "/products/1/notifications/1/recipients?limit=2", asAdmin)
      expect(first.status).toBe(200)
      expect(first.body.items.map((item: any) => item.userId)).toEqual([1, 2])
      expect(first.body.items[0].sentAt).toMatch(iso)
      expect(Object.keys(first.body.items[0]).sort()).toEqual(["sentAt", "userId"])
      const rest: Array<number> = []
      let afterId = first.body.nextAfterId
      while (afterId !== null) {
        const page = yield* request("GET", `/products/1/notifications/1/recipients?limit=2&afterId=${afterId}`, asAdmin)
        rest.push(...page.body.items.map((item: any) => item.userId))
        afterId = page.body.nextAfterId
      }
      expect(rest).toEqual([3, 4, 5])
      const defaults = yield* request("GET", "/products/1/notifications/2/recipients", asAdmin)
      expect(defaults.body.items).toHaveLength(5)
      expect(defaults.body.nextAfterId).toBeNull()
    }).pipe(Effect.provide(layerServer())))

  it.live("a round waiting for the send window answers its next opening wherever a round is answered", () =>
    Effect.gen(function*() {
      yield* seed({ stock: 5, subscribers: 1 })
      // A round opened waiting, as a dispatcher outside the window opens it (none runs it here).
      const repo = yield* Repo
      const opening = new Date("2031-05-07T06:00:00.000Z")
      const lease = { owner: "dispatcher", expiresAt: new Date(Date.now() + 60_000) }
      yield* repo.openRound(ProductId.make(1), lease, new Date(), { waitingUntil: opening })

      const one = yield* request("GET", "/products/1/notifications/1", asAdmin)
      expect(one.body).toMatchObject({ status: "IN_PROGRESS", waitingUntil: "2031-05-07T06:00:00.000Z" })
      const all = yield* request("GET", "/products/1/notifications", asAdmin)
      expect(all.body.map((r: any) => r.waitingUntil)).toEqual(["2031-05-07T06:00:00.000Z"])
      const listed = yield* request("GET", "/admin/products", asAdmin)
      expect(listed.body.items[0].latestRound).toMatchObject({ waitingUntil: "2031-05-07T06:00:00.000Z" })
      const stream = yield* openStream("/admin/products/1/notifications/stream", { token: asAdmin.token })
      const [first] = yield* stream.take(1)
      expect(JSON.parse(first!.data)).toMatchObject({ waitingUntil: "2031-05-07T06:00:00.000Z" })

      // The wait over, it reads null.
      yield* repo.setWaitingUntil(ProductId.make(1), RestockRound.make(1), "dispatcher", null, new Date())
      expect((yield* request("GET", "/products/1/notifications/1", asAdmin)).body.waitingUntil).toBeNull()
    }).pipe(Effect.provide(layerServer()), Effect.scoped))

  it.live("unknown products and rounds are 404", () =>
    Effect.gen(function*() {
      yield* seed({ stock: 1, subscribers: 0 })
      const before = yield* databaseSnapshot
      for (
        const [method, path, tag] of [
          ["POST", "/products/9/notifications/re-stock", "ProductNotFound"],
          ["POST", "/admin/products/9/notifications/re-stock", "ProductNotFound"],
          ["GET", "/products/9/notifications", "ProductNotFound"],
          ["GET", "/products/9/notifications/1", "ProductNotFound"],
          ["GET", "/products/9/notifications/1/recipients", "ProductNotFound"],
          ["GET", "/products/1/notifications/4", "RoundNotFound"],
          ["GET", "/products/1/notifications/4/recipients", "RoundNotFound"],
          ["GET", "/admin/products/9/notifications/stream", "ProductNotFound"]
        ] as const
      ) {
        const reply = yield* request(method, path, asAdmin)
        expect(reply.status, `${method} ${path}`).toBe(404)
        expect(reply.body._tag, `${method} ${path}`).toBe(tag)
        expect(reply.body.message).toBeTruthy()
      }
      expect(yield* databaseSnapshot).toEqual(before)
    }).pipe(Effect.provide(layerServer())))
})

describe("conflicts", () => {
  it.live("a second restock while a round is sending is 409 RoundInProgress and opens nothing", () =>
    Effect.gen(function*() {
      // 4 sends at 2 per second: the round is sending for about 2 seconds.
      yield* seed({ stock: 10, subscribers: 4 })
      const opened = yield* request("POST", "/products/1/notifications/re-stock", asAdmin)
      expect(opened.status).toBe(202)

      const again = yield* request("POST", "/products/1/notifications/re-stock", { ...asAdmin, body: { stock: 50 } })
      expect(again.status).toBe(409)
      expect(again.body).toMatchObject({ _tag: "RoundInProgress", productId: 1 })
      expect(again.body.message).toMatch(/in progress/)

      const rounds = yield* request("GET", "/products/1/notifications", asAdmin)
      expect(rounds.body).toHaveLength(1)
      const product = yield* request("GET", "/products/1")
      expect(product.body).toMatchObject({ restockRound: 1, stock: 10 })
      expect((yield* finished(1, 1)).status).toBe("COMPLETED")
    }).pipe(Effect.provide(layerServer({ limitPerSecond: 2 }))))

  it.live("resuming with nothing to resume is 409 NothingToResume and changes nothing", () =>
    Effect.gen(function*() {
      yield* seed({ stock: 10, subscribers: 2 })
      const before = yield* databaseSnapshot
      const none = yield* request("POST", "/admin/products/1/notifications/re-stock", asAdmin)
      expect(none.status).toBe(409)
      expect(none.body).toMatchObject({ _tag: "NothingToResume", productId: 1 })
      expect(yield* databaseSnapshot).toEqual(before)

      yield* request("POST", "/products/1/notifications/re-stock", asAdmin)
      yield* finished(1, 1)
      const completed = yield* databaseSnapshot
      const again = yield* request("POST", "/admin/products/1/notifications/re-stock", asAdmin)
      expect(again.status).toBe(409)
      expect(again.body._tag).toBe("NothingToResume")
      expect(yield* databaseSnapshot).toEqual(completed)
    }).pipe(Effect.provide(layerServer())))
})

describe("resuming", () => {
  it.live("a round stopped by a sender error resumes the same round from where it stopped", () =>
    Effect.gen(function*() {
      yield* seed({ stock: 10, subscribers: 4 })
      yield* request("POST", "/products/1/notifications/re-stock", asAdmin)
      const failed = yield* finished(1, 1)
      expect(failed).toMatchObject({ status: "CANCELED_BY_ERROR", lastSentUserId: 2 })
      expect(failed.error).toBeTruthy()

      const resumed = yield* request("POST", "/admin/products/1/notifications/re-stock", asAdmin)
      expect(resumed.status).toBe(202)
      expect(resumed.body).toMatchObject({ productId: 1, restockRound: 1, status: "IN_PROGRESS" })

      expect(yield* finished(1, 1)).toMatchObject({ status: "COMPLETED", sentCount: 4, lastSentUserId: 4 })
      const recipients = yield* request("GET", "/products/1/notifications/1/recipients", asAdmin)
      // In send order: user 4 comes before 3 when its send, overlapping user 3's failed one, succeeded.
      const received: Array<number> = recipients.body.items.map((item: any) => item.userId)
      expect(received.slice(0, 2)).toEqual([1, 2])
      expect([...received].sort()).toEqual([1, 2, 3, 4])
      expect((yield* request("GET", "/products/1/notifications", asAdmin)).body).toHaveLength(1)
    }).pipe(Effect.provide(layerServer({
      // User 3's first attempt is refused for good: the round stops there.
      recording: { failure: Recording.failUsers([UserId.make(3)], { reason: "Permanent", times: 1 }) }
    }))))
})

describe("the admin progress stream", () => {
  it.live("null first for a product without rounds, then the round as it changes, until it ends", () =>
    Effect.gen(function*() {
      yield* seed({ stock: 100, subscribers: 10 })
      const stream = yield* openStream("/admin/products/1/notifications/stream", { token: asAdmin.token })
      expect(stream.status).toBe(200)
      expect(stream.headers.get("content-type")).toMatch(/^text\/event-stream/)
      expect(stream.headers.get("cache-control")).toBe("no-cache")
      expect(stream.headers.get("x-accel-buffering")).toBe("no")
      const [first] = yield* stream.take(1)
      expect(first).toMatchObject({ event: "progress", data: "null" })

      yield* request("POST", "/products/1/notifications/re-stock", asAdmin)
      yield* eventually("the progress stream to end", Deferred.isDone(stream.ended), (done) => done, "20 seconds")
      const rounds = (yield* stream.drain).map((event) => {
        expect(event.event).toBe("progress")
        return JSON.parse(event.data)
      })
      expect(rounds.length).toBeGreaterThanOrEqual(2)
      expect(rounds[0]).toMatchObject({ productId: 1, restockRound: 1, status: "IN_PROGRESS" })
      expect(rounds[rounds.length - 1]).toMatchObject({ status: "COMPLETED", sentCount: 10, lastSentUserId: 10 })
      const counts = rounds.map((round) => round.sentCount)
      expect(counts).toEqual([...counts].sort((a, b) => a - b))
    }).pipe(Effect.scoped, Effect.provide(layerServer({ limitPerSecond: 20 }))))

  it.effect("while a round sends, an event at least every 250 ms, even when nothing changed (virtual time)", () =>
    Effect.gen(function*() {
      // 2 sends a second: the round changes every 500 ms, so only the cadence fills the gaps.
      yield* seed({ stock: 100, subscribers: 6 })
      const stream = yield* openStream("/admin/products/1/notifications/stream", { token: asAdmin.token })
      yield* stream.take(1) // null: no round yet
      expect((yield* request("POST", "/products/1/notifications/re-stock", asAdmin)).status).toBe(202)
      // Step the clock 10 ms at a time, noting when (in virtual time) each event came.
      const seen: Array<{ readonly at: number; readonly status: string }> = []
      for (let at = 0; at <= 10_000 && !(yield* Deferred.isDone(stream.ended)); at += 10) {
        yield* TestClock.adjust("10 millis")
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 2)))
        for (const event of yield* stream.drain) seen.push({ at, status: JSON.parse(event.data).status })
      }
      const sending = seen.filter((event) => event.status === "IN_PROGRESS")
      expect(sending.length).toBeGreaterThanOrEqual(8)
      expect(seen[seen.length - 1]!.status).toBe("COMPLETED")
      const gaps = sending.slice(1).map((event, i) => event.at - sending[i]!.at)
      // 250 ms, and the 10 ms of a step (an event is noted at the end of the step it came in).
      expect(Math.max(...gaps), `gaps ${gaps.join(", ")} ms`).toBeLessThanOrEqual(260)
    }).pipe(Effect.scoped, Effect.provide(layerServer({ limitPerSecond: 2 }))))

  it.live("the latest round first, and the admin token is accepted as ?access_token=", () =>
    Effect.gen(function*() {
      yield* seed({ stock: 100, subscribers: 1 })
      yield* request("POST", "/products/1/notifications/re-stock", asAdmin)
      yield* finished(1, 1)
      const stream = yield* openStream(`/admin/products/1/notifications/stream?access_token=${asAdmin.token}`)
      expect(stream.status).toBe(200)
      const [first] = yield* stream.take(1)
      expect(JSON.parse(first!.data)).toMatchObject({ restockRound: 1, status: "COMPLETED", sentCount: 1 })
    }).pipe(Effect.scoped, Effect.provide(layerServer())))
})
