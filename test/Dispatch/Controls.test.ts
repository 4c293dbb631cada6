/**
 * What a shop controls (SPEC §3.10–§3.12), in virtual time: minimum stock, the
 * fair share of scarce stock, and the send window — a round that meets the
 * window's close, waits through the night and goes on in the same round, with
 * nobody twice and nobody missed.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Either, Exit, Fiber, Layer, Scope, Stream, TestClock } from "effect"
import { Restock } from "../../src/Dispatch/Restock.js"
import * as RestockLive from "../../src/Dispatch/RestockLive.js"
import * as SendWindow from "../../src/Dispatch/SendWindow.js"
import type { ProductId, RestockRound } from "../../src/Domain/Ids.js"
import { UserId } from "../../src/Domain/Ids.js"
import * as Recording from "../../src/Notifier/Recording.js"
import { Repo } from "../../src/Repo/Repo.js"
import { StockCache } from "../../src/StockCache/StockCache.js"
import { maxInSlidingWindow } from "../support/Rate.js"
import { countActiveSubscribers, leaseOf } from "../support/Stored.js"
import { engine, ports, productId, seed, users } from "./harness.js"

/** Users 1..n subscribed to a product with `stock` and the given controls. */
const seedWith = (options: {
  readonly subscribers: number
  readonly stock: number
  readonly minimumStock?: number
  readonly notifyPerUnit?: number | null
}) =>
  Effect.gen(function*() {
    const id = yield* seed(options)
    yield* (yield* Repo).upsertProduct(id, {
      minimumStock: options.minimumStock ?? 0,
      notifyPerUnit: options.notifyPerUnit ?? null
    })
    return id
  })

const finish = (id: ProductId, round: RestockRound, virtualTime: Duration.DurationInput = "1 minute") =>
  Effect.gen(function*() {
    const waiter = yield* Effect.fork((yield* Restock).awaitRound(id, round))
    yield* TestClock.adjust(virtualTime)
    return yield* Fiber.join(waiter)
  })

const runRound = (id: ProductId) =>
  Effect.gen(function*() {
    const opened = yield* (yield* Restock).trigger(id)
    return yield* finish(id, opened.restockRound)
  })

const deliveredUsers = Effect.flatMap(Recording.Recording, (recording) => recording.delivered).pipe(
  Effect.map((notifications) => notifications.map((notification) => notification.userId as number))
)

const recordedUsers = (id: ProductId, round: RestockRound) =>
  Effect.gen(function*() {
    const page = yield* (yield* Repo).recipients(id, round, { afterId: null, limit: 1000 })
    return page.items.map((recipient) => recipient.userId as number)
  })

const roundNow = (id: ProductId, round: RestockRound) =>
  Effect.flatMap(Repo, (repo) => Effect.flatten(repo.getRound(id, round)))

/** Adds `delta` to the stock when the `index`-th notification arrives (a sale, or a restock). */
const stockChangeAt = (changes: Record<number, number>) => (call: Recording.Call) =>
  changes[call.index] === undefined
    ? Effect.void
    : Effect.flatMap(StockCache, (stock) => Effect.orDie(stock.adjust(productId, changes[call.index]!)))

describe("minimum stock (SPEC §3.10)", () => {
  it.effect("a round started at the minimum sends nothing and ends CANCELED_BY_SOLD_OUT", () =>
    Effect.gen(function*() {
      yield* seedWith({ subscribers: 20, stock: 3, minimumStock: 3 })
      const round = yield* runRound(productId)
      expect(round.status).toBe("CANCELED_BY_SOLD_OUT")
      expect(round.sentCount).toBe(0)
      expect(yield* deliveredUsers).toEqual([])
    }).pipe(Effect.provide(engine())))

  it.effect("stock sold down to the minimum mid-round stops it there: exactly the sends before", () =>
    Effect.gen(function*() {
      yield* seedWith({ subscribers: 300, stock: 5, minimumStock: 3 })
      const round = yield* runRound(productId)
      expect(round.status).toBe("CANCELED_BY_SOLD_OUT")
      // The 10th and the 40th notified users each bought one: 5 → 4 → 3, the minimum.
      expect(round.sentCount).toBe(40)
      expect(yield* deliveredUsers).toEqual(users(1, 40))
      expect(yield* recordedUsers(productId, round.restockRound)).toEqual(users(1, 40))
    }).pipe(Effect.provide(engine({ recording: { onReceive: stockChangeAt({ 10: -1, 40: -1 }) } }))))
})

describe("fair share of scarce stock (SPEC §3.11)", () => {
  it.effect("at steady stock: exactly notifyPerUnit × (stock − minimumStock) notified, COMPLETED, the rest still subscribed", () =>
    Effect.gen(function*() {
      yield* seedWith({ subscribers: 100, stock: 10, minimumStock: 2, notifyPerUnit: 3 })
      const round = yield* runRound(productId)
      expect(round.status).toBe("COMPLETED")
      expect(round.sentCount).toBe(24)
      expect(yield* deliveredUsers).toEqual(users(1, 24))
      expect(yield* recordedUsers(productId, round.restockRound)).toEqual(users(1, 24))
      expect(yield* countActiveSubscribers(productId)).toBe(100)
    }).pipe(Effect.provide(engine())))

  it.effect("stock dropping mid-round shrinks what is left to send", () =>
    Effect.gen(function*() {
      // Cap 5 × 10 = 50 at first; the 10th notified user buys 6: cap 5 × 4 = 20.
      yield* seedWith({ subscribers: 200, stock: 10, notifyPerUnit: 5 })
      const round = yield* runRound(productId)
      expect(round.status).toBe("COMPLETED")
      expect(round.sentCount).toBe(20)
      expect(yield* deliveredUsers).toEqual(users(1, 20))
    }).pipe(Effect.provide(engine({ recording: { onReceive: stockChangeAt({ 10: -6 }) } }))))

  it.effect("a drop that puts the round past its cap stops it at once, COMPLETED (not sold out)", () =>
    Effect.gen(function*() {
      // Cap 2 × 20 = 40; when the 15th arrives, stock 5: cap 10, already passed.
      yield* seedWith({ subscribers: 200, stock: 20, notifyPerUnit: 2 })
      const round = yield* runRound(productId)
      expect(round.status).toBe("COMPLETED")
      expect(round.sentCount).toBe(15)
      expect(yield* deliveredUsers).toEqual(users(1, 15))
    }).pipe(Effect.provide(engine({ recording: { onReceive: stockChangeAt({ 15: -15 }) } }))))

  it.effect("a resume counts the sends made before the interruption", () =>
    Effect.gen(function*() {
      // Cap 2 × 10 = 20. The sender refuses user 8 once: the round ends in error at 7 sent.
      yield* seedWith({ subscribers: 100, stock: 10, notifyPerUnit: 2 })
      const failed = yield* runRound(productId)
      expect(failed.status).toBe("CANCELED_BY_ERROR")
      expect(failed.sentCount).toBe(7)

      const resumed = yield* (yield* Restock).resume(productId)
      const done = yield* finish(productId, resumed.restockRound)
      expect(done.status).toBe("COMPLETED")
      expect(done.sentCount).toBe(20)
      expect(yield* deliveredUsers).toEqual(users(1, 20))
      expect(yield* recordedUsers(productId, done.restockRound)).toEqual(users(1, 20))
    }).pipe(Effect.provide(engine({
      recording: { failure: Recording.failUsers([UserId.make(8)], { reason: "Permanent", times: 1 }) }
    }))))
})

/** A window as `SEND_WINDOW` / `SEND_WINDOW_TIMEZONE` would give it. */
const windowOf = (window: string, zone = "UTC") => Either.getOrThrow(SendWindow.parse(window, zone))

/** A long lease, so a night in virtual time takes a few hundred heartbeats rather than thousands. */
const overnight = (window: string, zone?: string) => ({
  settings: { sendWindow: windowOf(window, zone), leaseDuration: Duration.minutes(10) }
})

const sentAtOfAll = Effect.flatMap(Recording.Recording, (recording) => recording.delivered).pipe(
  Effect.map((notifications) => notifications.map((notification) => notification.sentAt.getTime()))
)

describe("the send window (SPEC §3.12)", () => {
  it.effect("a round meets the close mid-round, waits through the night and goes on in the same round next morning", () =>
    Effect.gen(function*() {
      yield* seedWith({ subscribers: 1000, stock: 100 })
      yield* TestClock.setTime(Date.parse("2026-06-01T20:59:59.000Z"))
      const restock = yield* Restock
      const opened = yield* restock.trigger(productId)
      expect(opened.waitingUntil).toBeNull()

      // An hour later: about a second's worth sent before 21:00, the round waiting for 08:00.
      yield* TestClock.adjust("1 hour")
      const waiting = yield* roundNow(productId, opened.restockRound)
      expect(waiting.status).toBe("IN_PROGRESS")
      expect(waiting.waitingUntil?.toISOString()).toBe("2026-06-02T08:00:00.000Z")
      const beforeNight = yield* sentAtOfAll
      expect(beforeNight.length).toBeGreaterThan(400)
      expect(beforeNight.length).toBeLessThan(1000)
      expect(Math.max(...beforeNight)).toBeLessThan(Date.parse("2026-06-01T21:00:00.000Z"))
      expect(waiting.sentCount).toBe(beforeNight.length) // what was in flight at the close is recorded
      // The lease is kept while waiting.
      const lease = yield* Effect.flatten(leaseOf(productId, opened.restockRound))
      expect(lease.expiresAt.getTime()).toBeGreaterThan(Date.parse("2026-06-01T22:00:00.000Z"))

      // Through the night: nothing is sent.
      yield* TestClock.setTime(Date.parse("2026-06-02T07:59:59.000Z"))
      expect((yield* sentAtOfAll).length).toBe(beforeNight.length)

      const done = yield* finish(productId, opened.restockRound, "1 minute")
      expect(done.status).toBe("COMPLETED")
      expect(done.restockRound).toBe(opened.restockRound)
      expect(done.waitingUntil).toBeNull()
      expect(done.sentCount).toBe(1000)
      expect(yield* deliveredUsers).toEqual(users(1, 1000))
      expect(yield* recordedUsers(productId, opened.restockRound)).toEqual(users(1, 1000))
      const morning = (yield* sentAtOfAll).slice(beforeNight.length)
      expect(Math.min(...morning)).toBe(Date.parse("2026-06-02T08:00:00.000Z"))
    }).pipe(Effect.provide(engine(overnight("08:00-21:00")))), 60_000)

  it.effect("a round triggered at night opens IN_PROGRESS, says when it starts, and sends from the opening", () =>
    Effect.gen(function*() {
      yield* seedWith({ subscribers: 50, stock: 10 })
      yield* TestClock.setTime(Date.parse("2026-06-01T23:00:00.000Z"))
      const opened = yield* (yield* Restock).trigger(productId)
      expect(opened.status).toBe("IN_PROGRESS")
      expect(opened.waitingUntil?.toISOString()).toBe("2026-06-02T08:00:00.000Z")

      yield* TestClock.setTime(Date.parse("2026-06-02T07:59:59.999Z"))
      expect(yield* deliveredUsers).toEqual([])
      const done = yield* finish(productId, opened.restockRound)
      expect(done.status).toBe("COMPLETED")
      expect(yield* deliveredUsers).toEqual(users(1, 50))
      expect(Math.min(...(yield* sentAtOfAll))).toBe(Date.parse("2026-06-02T08:00:00.000Z"))
    }).pipe(Effect.provide(engine(overnight("08:00-21:00")))))

  it.effect("a window crossing midnight (21:00-08:00): triggered at noon, sends from 21:00", () =>
    Effect.gen(function*() {
      yield* seedWith({ subscribers: 20, stock: 10 })
      yield* TestClock.setTime(Date.parse("2026-06-01T12:00:00.000Z"))
      const opened = yield* (yield* Restock).trigger(productId)
      expect(opened.waitingUntil?.toISOString()).toBe("2026-06-01T21:00:00.000Z")
      yield* TestClock.setTime(Date.parse("2026-06-01T20:59:00.000Z"))
      const done = yield* finish(productId, opened.restockRound, "2 minutes")
      expect(done.status).toBe("COMPLETED")
      expect(Math.min(...(yield* sentAtOfAll))).toBe(Date.parse("2026-06-01T21:00:00.000Z"))
    }).pipe(Effect.provide(engine(overnight("21:00-08:00")))))

  for (
    const [change, triggeredAt, opensAt] of [
      ["clocks forward (29 March)", "2026-03-28T20:30:00.000Z", "2026-03-29T06:00:00.000Z"],
      ["clocks back (25 October)", "2026-10-24T19:30:00.000Z", "2026-10-25T07:00:00.000Z"]
    ] as const
  ) {
    it.effect(`Europe/Berlin, the night its ${change}: the round goes on at 08:00 local time`, () =>
      Effect.gen(function*() {
        yield* seedWith({ subscribers: 10, stock: 10 })
        yield* TestClock.setTime(Date.parse(triggeredAt))
        const opened = yield* (yield* Restock).trigger(productId)
        expect(opened.waitingUntil?.toISOString()).toBe(opensAt)
        yield* TestClock.setTime(Date.parse(opensAt) - 1)
        expect(yield* deliveredUsers).toEqual([])
        const done = yield* finish(productId, opened.restockRound)
        expect(done.status).toBe("COMPLETED")
        expect(Math.min(...(yield* sentAtOfAll))).toBe(Date.parse(opensAt))
      }).pipe(Effect.provide(engine(overnight("08:00-21:00", "Europe/Berlin")))))
  }

  it.effect("stock sold out while the round waits ends it CANCELED_BY_SOLD_OUT, with nothing more sent", () =>
    Effect.gen(function*() {
      yield* seedWith({ subscribers: 20, stock: 10 })
      yield* TestClock.setTime(Date.parse("2026-06-01T23:00:00.000Z"))
      const opened = yield* (yield* Restock).trigger(productId)
      yield* TestClock.adjust("1 hour")
      yield* Effect.orDie((yield* StockCache).set(productId, 0))
      const done = yield* finish(productId, opened.restockRound)
      expect(done.status).toBe("CANCELED_BY_SOLD_OUT")
      expect(done.waitingUntil).toBeNull()
      expect(yield* deliveredUsers).toEqual([])
    }).pipe(Effect.provide(engine(overnight("08:00-21:00")))))

  it.effect("a shutdown while waiting ends the round CANCELED_BY_ERROR \"shutdown\"; a resume next morning sends everyone once", () =>
    Effect.gen(function*() {
      yield* seedWith({ subscribers: 30, stock: 10 })
      yield* TestClock.setTime(Date.parse("2026-06-01T23:00:00.000Z"))
      const firstLife = yield* Scope.make()
      const restock = Context.get(yield* Layer.buildWithScope(RestockLive.layer, firstLife), Restock)
      const opened = yield* restock.trigger(productId)
      yield* TestClock.adjust("1 hour")
      yield* Scope.close(firstLife, Exit.void)

      const halted = yield* roundNow(productId, opened.restockRound)
      expect(halted.status).toBe("CANCELED_BY_ERROR")
      expect(halted.error).toBe("shutdown")
      expect(halted.waitingUntil).toBeNull()
      expect(yield* deliveredUsers).toEqual([])

      yield* TestClock.setTime(Date.parse("2026-06-02T09:00:00.000Z"))
      const secondLife = yield* Scope.make()
      const restarted = Context.get(yield* Layer.buildWithScope(RestockLive.layer, secondLife), Restock)
      const resumed = yield* restarted.resume(productId)
      expect(resumed.waitingUntil).toBeNull()
      const waiter = yield* Effect.fork(restarted.awaitRound(productId, resumed.restockRound))
      yield* TestClock.adjust("1 minute")
      const done = yield* Fiber.join(waiter)
      yield* Scope.close(secondLife, Exit.void)
      expect(done.status).toBe("COMPLETED")
      expect(yield* deliveredUsers).toEqual(users(1, 30))
    }).pipe(Effect.provide(ports(overnight("08:00-21:00")))))

  it.effect("the waiting is told: a progress event with waitingUntil, then one without it", () =>
    Effect.gen(function*() {
      // A window closed one minute a day (progress is re-read every 250 ms: a whole night of it is slow).
      yield* seedWith({ subscribers: 5, stock: 10 })
      yield* TestClock.setTime(Date.parse("2026-06-01T20:59:00.000Z"))
      const restock = yield* Restock
      const opened = yield* restock.trigger(productId)
      const seen = yield* Effect.fork(
        restock.progress(productId).pipe(
          Stream.map((round) => round?.waitingUntil?.toISOString() ?? null),
          Stream.changes,
          Stream.take(2),
          Stream.runCollect
        )
      )
      yield* finish(productId, opened.restockRound, "2 minutes")
      expect([...(yield* Fiber.join(seen))]).toEqual(["2026-06-01T21:00:00.000Z", null])
    }).pipe(Effect.provide(engine(overnight("21:00-20:59")))))
})

describe("every control at once", () => {
  it.effect("minimum stock, the fair share and a window that closes mid-round: in order, within the limit, nobody twice, the cap exact", () =>
    Effect.gen(function*() {
      // Cap 2 × (400 − 100) = 600 of 1,000; the window closes about 500 sends in.
      yield* seedWith({ subscribers: 1000, stock: 400, minimumStock: 100, notifyPerUnit: 2 })
      yield* TestClock.setTime(Date.parse("2026-06-01T20:59:59.000Z"))
      const opened = yield* (yield* Restock).trigger(productId)
      yield* TestClock.setTime(Date.parse("2026-06-02T07:59:00.000Z"))
      const done = yield* finish(productId, opened.restockRound, "2 minutes")

      expect(done.status).toBe("COMPLETED")
      expect(done.sentCount).toBe(600)
      const calls = yield* (yield* Recording.Recording).calls
      expect(calls.map((call) => call.notification.userId)).toEqual(users(1, 600))
      expect(yield* recordedUsers(productId, opened.restockRound)).toEqual(users(1, 600))
      const starts = calls.map((call) => call.receivedAt)
      expect(maxInSlidingWindow(starts, 1000)).toBeLessThanOrEqual(500)
      expect(starts.filter((at) => at >= Date.parse("2026-06-01T21:00:00.000Z") && at < Date.parse("2026-06-02T08:00:00.000Z")))
        .toEqual([])
      expect(starts.filter((at) => at < Date.parse("2026-06-01T21:00:00.000Z")).length).toBeGreaterThan(400)
    }).pipe(Effect.provide(engine(overnight("08:00-21:00")))), 60_000)
})
