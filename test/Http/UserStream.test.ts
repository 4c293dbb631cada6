/**
 * The user SSE stream (SPEC §4 "User SSE stream") over real HTTP connections,
 * read with a real event-stream parser: delivery to every stream of every
 * notified user, `Last-Event-ID` replay with no gap and no duplicate even when
 * deliveries race the reconnect, the heartbeat and token expiry in virtual
 * time, slow clients dropped, and nothing held once clients go away.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Duration, Effect, Exit, Fiber, Layer, Scope, TestClock } from "effect"
import { Restock } from "../../src/Dispatch/Restock.js"
import { Delivery } from "../../src/Domain/Delivery.js"
import { DeliveryId, ProductId, RestockRound, UserId } from "../../src/Domain/Ids.js"
import { DeliveryFeed } from "../../src/Feed/Feed.js"
import {
  asAdmin,
  eventually,
  FeedProbe,
  layerServer,
  openStalledStream,
  openStream,
  ReplayHooks,
  request,
  userToken
} from "../support/Http.js"

/** Products `ids`, stock 100, each with `users` subscribed in order. */
const seed = (ids: ReadonlyArray<number>, users: ReadonlyArray<number>) =>
  Effect.forEach(ids, (id) =>
    Effect.gen(function*() {
      yield* request("PUT", `/admin/products/${id}`, { ...asAdmin, body: { name: `Product ${id}`, stock: 100 } })
      for (const user of users) yield* request("PUT", `/products/${id}/subscriptions/${user}`, asAdmin)
    }), { discard: true })

/** Restocks a product and waits for its round to end (its deliveries are then recorded and published). */
const restockAndWait = (id: number) =>
  Effect.gen(function*() {
    const restock = yield* Restock
    const round = yield* restock.trigger(ProductId.make(id))
    yield* restock.awaitRound(ProductId.make(id), round.restockRound)
  }).pipe(Effect.orDie)

/** The history ids of a user's deliveries, read straight from the table (not through the hooked `Repo`). */
const deliveryIds = (userId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly id: number }>`SELECT id FROM product_user_notification_history WHERE user_id = ${userId} ORDER BY id`
  ).pipe(Effect.map((rows) => rows.map((row) => String(row.id))), Effect.orDie)

/** Lets the server run a moment, on the real clock, to show that nothing more arrives. */
const settle = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 150)))

const liveClock = Clock.make()

const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/

describe("live notifications", () => {
  it.live("a restock reaches the stream of every subscriber, with the delivery id as event id", () =>
    Effect.gen(function*() {
      yield* seed([1], [1, 2, 3])
      const streams = yield* Effect.forEach([1, 2, 3, 4], (user) =>
        Effect.flatMap(userToken(user), (token) => openStream(`/users/${user}/notifications/stream`, { token })))
      for (const stream of streams) {
        expect(stream.status).toBe(200)
        expect(stream.headers.get("content-type")).toMatch(/^text\/event-stream/)
        expect(stream.headers.get("cache-control")).toBe("no-cache")
        expect(stream.headers.get("x-accel-buffering")).toBe("no")
      }
      yield* eventually("three listeners", (yield* FeedProbe).open, (open) => open === 4)

      yield* restockAndWait(1)
      for (const [index, stream] of streams.slice(0, 3).entries()) {
        const [event] = yield* stream.take(1)
        expect(event!.event).toBe("restock")
        expect([event!.id]).toEqual(yield* deliveryIds(index + 1))
        const data = JSON.parse(event!.data)
        expect(data).toEqual({
          productId: 1,
          productName: "Product 1",
          restockRound: 1,
          sentAt: expect.stringMatching(iso),
          unsubscribeUrl: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/unsubscribe\/[\w-]+\.[\w-]+\.[\w-]+$/)
        })
      }
      yield* settle
      expect(yield* streams[3]!.drain).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(layerServer())))

  it.live("every open stream of one user receives each notification, in order", () =>
    Effect.gen(function*() {
      yield* seed([1, 2], [1])
      const token = yield* userToken(1)
      const first = yield* openStream("/users/1/notifications/stream", { token })
      const second = yield* openStream(`/users/1/notifications/stream?access_token=${token}`)
      const asAdminStream = yield* openStream("/users/1/notifications/stream", { token: asAdmin.token })
      yield* eventually("three listeners", (yield* FeedProbe).open, (open) => open === 3)

      yield* restockAndWait(1)
      yield* restockAndWait(2)
      const expected = yield* deliveryIds(1)
      expect(expected).toHaveLength(2)
      for (const stream of [first, second, asAdminStream]) {
        const events = yield* stream.take(2)
        expect(events.map((event) => event.id)).toEqual(expected)
        expect(events.map((event) => JSON.parse(event.data).productId)).toEqual([1, 2])
      }
    }).pipe(Effect.scoped, Effect.provide(layerServer())))
})

describe("reconnecting with Last-Event-ID", () => {
  it.live("replays what was missed, then goes on live, with no gap and no duplicate around the replay query", () =>
    Effect.gen(function*() {
      yield* seed([1, 2, 3, 4, 5, 6], [1])
      for (const id of [1, 2, 3]) yield* restockAndWait(id)
      const [d1] = yield* deliveryIds(1)

      // Product 4's delivery lands after the live subscription but before the
      // replay query: both see it. Product 5's lands after the query: only the
      // live side sees it.
      const hooks = yield* ReplayHooks
      const context = yield* Effect.context<Restock>()
      yield* hooks.beforeQuery(Effect.provide(restockAndWait(4), context))
      yield* hooks.afterQuery(Effect.provide(restockAndWait(5), context))

      const token = yield* userToken(1)
      const stream = yield* openStream("/users/1/notifications/stream", {
        token,
        headers: { "last-event-id": d1! }
      })
      expect(stream.status).toBe(200)
      const replayedAndRaced = yield* stream.take(4)
      yield* restockAndWait(6)
      const live = yield* stream.take(1)

      const all = yield* deliveryIds(1)
      expect(all).toHaveLength(6)
      expect([...replayedAndRaced, ...live].map((event) => event.id)).toEqual(all.slice(1))
      expect([...replayedAndRaced, ...live].map((event) => JSON.parse(event.data).productId)).toEqual([2, 3, 4, 5, 6])
      yield* settle
      expect(yield* stream.drain).toEqual([])
      expect(yield* hooks.queries).toBe(1)
    }).pipe(Effect.scoped, Effect.provide(layerServer())))

  it.live("replays in pages, accepts ?lastEventId= (0: everything), and the header wins over the query", () =>
    Effect.gen(function*() {
      const products = Array.from({ length: 7 }, (_, i) => i + 1)
      yield* seed(products, [1])
      for (const id of products) yield* restockAndWait(id)
      const all = yield* deliveryIds(1)
      const token = yield* userToken(1)

      const everything = yield* openStream(`/users/1/notifications/stream?lastEventId=0&access_token=${token}`)
      expect((yield* everything.take(7)).map((event) => event.id)).toEqual(all)

      const headerWins = yield* openStream(`/users/1/notifications/stream?lastEventId=0`, {
        token,
        headers: { "last-event-id": all[4]! }
      })
      expect((yield* headerWins.take(2)).map((event) => event.id)).toEqual(all.slice(5))
      yield* settle
      expect(yield* headerWins.drain).toEqual([])
      // Pages of 3: 7 deliveries take three queries for the first stream.
      expect(yield* (yield* ReplayHooks).queries).toBe(3 + 1)
    }).pipe(Effect.scoped, Effect.provide(layerServer({ sse: { replayPageSize: 3 } }))))

  it.live("a Last-Event-ID that is not an event id is 400", () =>
    Effect.gen(function*() {
      const token = yield* userToken(1)
      for (const value of ["abc", "-1", "1.5", "1e3"]) {
        const header = yield* request("GET", "/users/1/notifications/stream", {
          token,
          headers: { "last-event-id": value }
        })
        expect(header.status, value).toBe(400)
        expect(header.body._tag).toBe("BadRequest")
        const query = yield* request("GET", `/users/1/notifications/stream?lastEventId=${value}`, { token })
        expect(query.status, value).toBe(400)
      }
    }).pipe(Effect.provide(layerServer())))
})

describe("in virtual time", () => {
  it.effect("a ping comment every 15 seconds, through the Clock", () =>
    Effect.gen(function*() {
      const token = yield* userToken(1)
      const stream = yield* openStream("/users/1/notifications/stream", { token })
      expect(stream.status).toBe(200)
      yield* eventually("the listener", (yield* FeedProbe).open, (open) => open === 1)

      yield* TestClock.adjust("14 seconds")
      yield* settle
      expect(yield* stream.comments.size).toBe(0)
      yield* TestClock.adjust("1 second")
      yield* eventually("the first ping", stream.comments.size, (size) => size === 1)
      yield* TestClock.adjust("30 seconds")
      yield* eventually("two more pings", stream.comments.size, (size) => size === 3)
      expect(Array.from(yield* stream.comments.takeAll)).toEqual(["ping", "ping", "ping"])
      expect(yield* Deferred.isDone(stream.ended)).toBe(false)
    }).pipe(Effect.scoped, Effect.provide(layerServer())))

  it.effect("a stream opened with a user token closes when the token expires; the token is refused after", () =>
    Effect.gen(function*() {
      const token = yield* userToken(1, 60)
      const userStream = yield* openStream("/users/1/notifications/stream", { token })
      const adminStream = yield* openStream("/users/1/notifications/stream", { token: asAdmin.token })
      expect(userStream.status).toBe(200)
      yield* eventually("both listeners", (yield* FeedProbe).open, (open) => open === 2)

      yield* TestClock.adjust("59 seconds")
      yield* settle
      expect(yield* Deferred.isDone(userStream.ended)).toBe(false)
      yield* TestClock.adjust("1 second")
      expect(yield* Deferred.await(userStream.ended).pipe(Effect.timeout("5 seconds"), Effect.withClock(liveClock)))
        .toBe("end")
      yield* eventually("the expired listener released", (yield* FeedProbe).open, (open) => open === 1)
      expect(yield* Deferred.isDone(adminStream.ended)).toBe(false)

      const again = yield* openStream("/users/1/notifications/stream", { token })
      expect(again.status).toBe(401)
      expect(again.errorBody).toMatchObject({ _tag: "Unauthorized" })
    }).pipe(Effect.scoped, Effect.provide(layerServer())))
})

describe("the timer the streams share", () => {
  it.effect("a stream whose token expires sooner than the timer's next wake still closes on time", () =>
    Effect.gen(function*() {
      // No ping for an hour: the timer sleeps until the first token's expiry, 60 s; the
      // 10 s token opened after it must wake it earlier.
      const later = yield* openStream("/users/1/notifications/stream", { token: yield* userToken(1, 60) })
      yield* eventually("the first listener", (yield* FeedProbe).open, (open) => open === 1)
      const sooner = yield* openStream("/users/2/notifications/stream", { token: yield* userToken(2, 10) })
      yield* eventually("both listeners", (yield* FeedProbe).open, (open) => open === 2)

      yield* TestClock.adjust("9 seconds")
      yield* settle
      expect(yield* Deferred.isDone(sooner.ended)).toBe(false)
      yield* TestClock.adjust("1 second")
      expect(yield* Deferred.await(sooner.ended).pipe(Effect.timeout("5 seconds"), Effect.withClock(liveClock))).toBe("end")
      expect(yield* Deferred.isDone(later.ended)).toBe(false)
      yield* TestClock.adjust("50 seconds")
      expect(yield* Deferred.await(later.ended).pipe(Effect.timeout("5 seconds"), Effect.withClock(liveClock))).toBe("end")
      yield* eventually("both listeners released", (yield* FeedProbe).open, (open) => open === 0)
      expect(yield* later.comments.size).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(layerServer({ sse: { heartbeatInterval: Duration.hours(1) } }))))
})

describe("shutting down", () => {
  it.live("open streams end and the server closes within seconds", () =>
    Effect.gen(function*() {
      const serverScope = yield* Scope.make()
      const server = yield* Layer.buildWithScope(layerServer(), serverScope)
      const clients = yield* Scope.make()
      const [userStream, progressStream] = yield* Effect.gen(function*() {
        const token = yield* userToken(1)
        yield* request("PUT", "/admin/products/1", { ...asAdmin, body: { name: "Kettle" } })
        return [
          yield* openStream("/users/1/notifications/stream", { token }),
          yield* openStream("/admin/products/1/notifications/stream", { token: asAdmin.token })
        ] as const
      }).pipe(Effect.provide(server), Scope.extend(clients))
      yield* progressStream.take(1)

      const started = Date.now()
      yield* Scope.close(serverScope, Exit.void)
      expect(Date.now() - started).toBeLessThan(3000)
      // Ended by the server ("end"), not cut when the shutdown grace ran out ("error").
      expect(yield* Deferred.await(userStream.ended)).toBe("end")
      expect(yield* Deferred.await(progressStream.ended)).toBe("end")
      yield* Scope.close(clients, Exit.void)
    }))
})

describe("holding nothing it should not", () => {
  it.live("a client that stops reading is disconnected; a client that keeps up gets everything", () =>
    Effect.gen(function*() {
      const token = yield* userToken(1)
      const probe = yield* FeedProbe
      const healthy = yield* openStream("/users/1/notifications/stream", { token })

      // A client that sends its request, then stops reading.
      const stalled = yield* openStalledStream("/users/1/notifications/stream", token)
      yield* eventually("both listeners", probe.open, (open) => open === 2)

      // 400 deliveries of 32 KiB, 200 a second: far more than the kernel
      // buffers and the connection's 2 MiB hold for the stalled client.
      const feed = yield* DeliveryFeed
      const name = "x".repeat(32 * 1024)
      const total = 400
      const publishing = yield* Effect.fork(Effect.forEach(
        Array.from({ length: total / 2 }, (_, batch) => batch),
        (batch) =>
          feed.publish([0, 1].map((k) =>
            new Delivery({
              id: DeliveryId.make(batch * 2 + k + 1),
              productId: ProductId.make(1),
              productName: name,
              userId: UserId.make(1),
              restockRound: RestockRound.make(batch * 2 + k + 1),
              sentAt: new Date()
            })
          )).pipe(Effect.zipRight(Effect.sleep("10 millis"))),
        { discard: true }
      ))
      // Dropped while still stalled: its subscription is released at once.
      yield* eventually("the stalled listener dropped", probe.open, (open) => open === 1, "20 seconds")
      yield* Fiber.join(publishing)

      // When it reads again, it finds what was already on the wire, then the end.
      let bytes = ""
      yield* Effect.async<void>((resume) => {
        stalled.setEncoding("utf8")
        stalled.on("data", (data: string) => (bytes += data))
        stalled.once("close", () => resume(Effect.void))
        stalled.resume()
      }).pipe(
        Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("the stalled client was never disconnected") }),
        Effect.orDie
      )
      const stalledEvents = bytes.split("\nevent: restock\n").length - 1
      expect(stalledEvents).toBeGreaterThan(0)
      expect(stalledEvents).toBeLessThan(total)

      const received = yield* healthy.take(total, "20 seconds")
      expect(received.map((event) => Number(event.id))).toEqual(Array.from({ length: total }, (_, i) => i + 1))
      expect(yield* Deferred.isDone(healthy.ended)).toBe(false)
    }).pipe(Effect.scoped, Effect.provide(layerServer({ sse: { bufferBytes: 2 * 1024 * 1024 } }))), 60_000)

  it.live("1,000 connects and disconnects leave no subscription and no fiber behind", () =>
    Effect.gen(function*() {
      const token = yield* userToken(1)
      const probe = yield* FeedProbe
      const cycle = openStream("/users/1/notifications/stream", { token }).pipe(
        Effect.tap((stream) => expect(stream.status).toBe(200)),
        Effect.scoped
      )
      // Warm up, then count the fibers of a quiet server.
      yield* Effect.forEach(Array.from({ length: 20 }), () => cycle, { concurrency: 10, discard: true })
      yield* eventually("the warm-up listeners released", probe.open, (open) => open === 0)
      yield* settle
      const fibersBefore = Fiber.unsafeRoots().length

      yield* Effect.forEach(Array.from({ length: 1000 }), () => cycle, { concurrency: 20, discard: true })
      expect(yield* probe.opened).toBe(1020)
      yield* eventually("every listener released", probe.open, (open) => open === 0)
      const fibersAfter = yield* eventually(
        "the connection fibers gone",
        Effect.sync(() => Fiber.unsafeRoots().length),
        (count) => count <= fibersBefore
      )
      expect(fibersAfter).toBeLessThanOrEqual(fibersBefore)
    }).pipe(Effect.provide(layerServer())), 120_000)
})
