/**
 * The dispatch guarantees of SPEC §3, in virtual time: every wait goes
 * through `Clock`, so `TestClock` drives whole rounds exactly.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Scope, TestClock } from "effect"
import { defaultMargin, spacingMicros } from "../../src/Dispatch/RateLimiter/Slots.js"
import { Restock } from "../../src/Dispatch/Restock.js"
import * as RestockLive from "../../src/Dispatch/RestockLive.js"
import { ProductId, RestockRound, UserId } from "../../src/Domain/Ids.js"
import { Notifier } from "../../src/Notifier/Notifier.js"
import * as Recording from "../../src/Notifier/Recording.js"
import { Repo } from "../../src/Repo/Repo.js"
import { StockCache } from "../../src/StockCache/StockCache.js"
import { maxInSlidingWindow } from "../support/Rate.js"
import { engine, ports, productId, seed, users } from "./harness.js"

/** Triggers a round, lets virtual time run, and returns the round as it ended. */
const runRound = (id: ProductId, options: { readonly stock?: number; readonly virtualTime?: Duration.DurationInput } = {}) =>
  Effect.gen(function*() {
    const restock = yield* Restock
    const opened = yield* restock.trigger(id, options.stock === undefined ? {} : { stock: options.stock })
    return yield* finish(id, opened.restockRound, options.virtualTime)
  })

const finish = (id: ProductId, round: RestockRound, virtualTime: Duration.DurationInput = "1 minute") =>
  Effect.gen(function*() {
    const restock = yield* Restock
    const waiter = yield* Effect.fork(restock.awaitRound(id, round))
    yield* TestClock.adjust(virtualTime)
    return yield* Fiber.join(waiter)
  })

const deliveredUsers = Effect.gen(function*() {
  const recording = yield* Recording.Recording
  return (yield* recording.delivered).map((notification) => notification.userId as number)
})

const recordedUsers = (id: ProductId, round: RestockRound) =>
  Effect.gen(function*() {
    const repo = yield* Repo
    const page = yield* repo.recipients(id, round, { afterId: null, limit: 1000 })
    return page.items.map((recipient) => recipient.userId as number)
  })

const spacingMs = spacingMicros(500, defaultMargin) / 1000

describe("the rate limit", () => {
  it.effect("10,000 subscribers take exactly the virtual time the limit implies, never more than the limit in a second", () =>
    Effect.gen(function*() {
      yield* seed({ subscribers: 10_000, stock: 100 })
      const round = yield* runRound(productId, { virtualTime: "25 seconds" })
      const calls = yield* (yield* Recording.Recording).calls
      const starts = calls.map((call) => call.receivedAt)

      expect(round.status).toBe("COMPLETED")
      expect(round.sentCount).toBe(10_000)
      expect(round.lastSentUserId).toBe(10_000)
      expect(calls.map((call) => call.notification.userId)).toEqual(users(1, 10_000))
      // Evenly spaced starts: the first at once, the last (n − 1) spacings later.
      expect(starts[0]).toBe(0)
      expect(starts[starts.length - 1]).toBeCloseTo((10_000 - 1) * spacingMs, 6)
      expect(maxInSlidingWindow(starts, 1000)).toBeLessThanOrEqual(500)
      expect(maxInSlidingWindow(starts, 1000)).toBeGreaterThanOrEqual(490)
    }).pipe(Effect.provide(engine())), 180_000)

  it.effect("a slow send holds up only itself: the starts after it stay evenly spaced", () =>
    Effect.gen(function*() {
      yield* seed({ subscribers: 200, stock: 1_000 })
      const round = yield* runRound(productId)
      const starts = (yield* (yield* Recording.Recording).calls).map((call) => call.receivedAt)

      expect(round).toMatchObject({ status: "COMPLETED", sentCount: 200, lastSentUserId: 200 })
      starts.forEach((start, i) => expect(start).toBeCloseTo(i * spacingMs, 6))
    }).pipe(Effect.provide(engine({
      // User 5 answers after 300 ms, the rest after 20: in-order release would stall the starts.
      recording: { latency: (call) => Duration.millis(call.notification.userId === 5 ? 300 : 20) }
    }))))

  it.effect("two products share one limit", () =>
    Effect.gen(function*() {
      const other = ProductId.make(8)
      yield* seed({ subscribers: 600, stock: 10 })
      yield* seed({ subscribers: 600, stock: 10, id: other })
      const restock = yield* Restock
      const first = yield* restock.trigger(productId)
      const second = yield* restock.trigger(other)
      const waiters = yield* Effect.fork(Effect.all([
        restock.awaitRound(productId, first.restockRound),
        restock.awaitRound(other, second.restockRound)
      ], { concurrency: 2 }))
      yield* TestClock.adjust("10 seconds")
      const [a, b] = yield* Fiber.join(waiters)
      const starts = (yield* (yield* Recording.Recording).calls).map((call) => call.receivedAt)

      expect([a.status, b.status]).toEqual(["COMPLETED", "COMPLETED"])
      expect(starts.length).toBe(1200)
      expect(maxInSlidingWindow(starts, 1000)).toBeLessThanOrEqual(500)
      expect(Math.max(...starts)).toBeCloseTo(1199 * spacingMs, 6)
    }).pipe(Effect.provide(engine())), 120_000)

  it.effect("retries count against the limit", () =>
    Effect.gen(function*() {
      yield* seed({ subscribers: 20, stock: 10 })
      const round = yield* runRound(productId)
      const calls = yield* (yield* Recording.Recording).calls

      expect(round.status).toBe("COMPLETED")
      expect(round.sentCount).toBe(20)
      // Users 3 and 4 each failed once, then succeeded: 22 requests in all, each with its own start.
      expect(calls.length).toBe(22)
      const starts = calls.map((call) => call.receivedAt).sort((x, y) => x - y)
      for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(spacingMs - 1e-6)
    }).pipe(Effect.provide(engine({
      recording: { failure: Recording.failUsers([UserId.make(3), UserId.make(4)], { times: 1 }) }
    }))))
})

describe("sold out", () => {
  const k = 137
  it.effect("stock set to 0 when the k-th notification arrives: exactly k sent, CANCELED_BY_SOLD_OUT", () =>
    Effect.gen(function*() {
      yield* seed({ subscribers: 500, stock: 20 })
      const round = yield* runRound(productId)

      expect(round.status).toBe("CANCELED_BY_SOLD_OUT")
      expect(yield* deliveredUsers).toEqual(users(1, k))
      expect(round.sentCount).toBe(k)
      expect(round.lastSentUserId).toBe(k)
      expect(yield* recordedUsers(productId, round.restockRound)).toEqual(users(1, k))
    }).pipe(Effect.provide(engine({
      recording: {
        onReceive: (call) =>
          call.index === k ? Effect.flatMap(StockCache, (stock) => Effect.orDie(stock.set(productId, 0))) : Effect.void
      }
    }))))

  it.effect("stock decremented to 0 by sales mid-round stops it the same way", () =>
    Effect.gen(function*() {
      yield* seed({ subscribers: 300, stock: 3 })
      const round = yield* runRound(productId)
      expect(round.status).toBe("CANCELED_BY_SOLD_OUT")
      // The 10th, 20th and 30th notified users each bought one.
      expect(round.sentCount).toBe(30)
    }).pipe(Effect.provide(engine({
      recording: {
        onReceive: (call) =>
          call.index % 10 === 0 ? Effect.flatMap(StockCache, (stock) => Effect.orDie(stock.adjust(productId, -1))) : Effect.void
      }
    }))))

  it.effect("a round started with stock 0 sends nothing and ends CANCELED_BY_SOLD_OUT", () =>
    Effect.gen(function*() {
      yield* seed({ subscribers: 50, stock: 0 })
      const round = yield* runRound(productId)
      expect(round.status).toBe("CANCELED_BY_SOLD_OUT")
      expect(round.sentCount).toBe(0)
      expect(round.lastSentUserId).toBeNull()
      expect(yield* deliveredUsers).toEqual([])
    }).pipe(Effect.provide(engine())))

  it.effect("a restock that sets stock 0 in its body sends nothing", () =>
    Effect.gen(function*() {
      yield* seed({ subscribers: 5, stock: 10 })
      const round = yield* runRound(productId, { stock: 0 })
      expect(round.status).toBe("CANCELED_BY_SOLD_OUT")
      expect(yield* deliveredUsers).toEqual([])
    }).pipe(Effect.provide(engine())))
})

describe("completion", () => {
  it.effect("no subscribers: the round completes at once with nothing sent", () =>
    Effect.gen(function*() {
      yield* seed({ subscribers: 0, stock: 5 })
      const round = yield* runRound(productId)
      expect(round.status).toBe("COMPLETED")
      expect(round.sentCount).toBe(0)
      expect(round.lastSentUserId).toBeNull()
      expect(round.finishedAt).not.toBeNull()
    }).pipe(Effect.provide(engine())))

  it.effect("unsubscribed users are skipped; a resubscribed user keeps their place", () =>
    Effect.gen(function*() {
      const repo = yield* Repo
      yield* seed({ subscribers: 6, stock: 5 })
      yield* repo.unsubscribe(productId, UserId.make(2))
      yield* repo.unsubscribe(productId, UserId.make(4))
      yield* repo.subscribe(productId, UserId.make(4))
      yield* repo.subscribe(productId, UserId.make(9))
      const round = yield* runRound(productId)
      expect(yield* deliveredUsers).toEqual([1, 3, 4, 5, 6, 9])
      expect(round.lastSentUserId).toBe(9)
    }).pipe(Effect.provide(engine())))

  it.effect("a second trigger while a round is in progress is refused with RoundInProgress, changing nothing", () =>
    Effect.gen(function*() {
      const restock = yield* Restock
      const repo = yield* Repo
      yield* seed({ subscribers: 100, stock: 5 })
      const first = yield* restock.trigger(productId)
      const refused = yield* Effect.flip(restock.trigger(productId, { stock: 99 }))
      expect(refused._tag).toBe("RoundInProgress")
      const product = yield* Effect.flatten(repo.getProduct(productId))
      expect(product.stock).toBe(5)
      expect(product.restockRound).toBe(first.restockRound)
      const finished = yield* finish(productId, first.restockRound)
      expect(finished.status).toBe("COMPLETED")
    }).pipe(Effect.provide(engine())))
})

describe("errors and resume", () => {
  const k = 250
  it.effect("a sender failing at user 250 ends CANCELED_BY_ERROR at 249; resume sends the rest exactly once, same round", () =>
    Effect.gen(function*() {
      yield* seed({ subscribers: 400, stock: 10 })
      const restock = yield* Restock
      const failed = yield* runRound(productId)

      expect(failed.status).toBe("CANCELED_BY_ERROR")
      expect(failed.lastSentUserId).toBe(k - 1)
      expect(failed.error).toContain("sender failed")
      // Sends already in flight when 250 failed were awaited and recorded.
      const recorded = yield* recordedUsers(productId, failed.restockRound)
      expect(failed.sentCount).toBe(recorded.length)
      expect(recorded.slice(0, k - 1)).toEqual(users(1, k - 1))
      expect(recorded).not.toContain(k)

      const resumed = yield* restock.resume(productId)
      expect(resumed.restockRound).toBe(failed.restockRound)
      expect(resumed.status).toBe("IN_PROGRESS")
      const done = yield* finish(productId, resumed.restockRound)

      expect(done.status).toBe("COMPLETED")
      expect(done.sentCount).toBe(400)
      expect(done.lastSentUserId).toBe(400)
      expect(done.error).toBeNull()
      const all = yield* recordedUsers(productId, done.restockRound)
      expect([...all].sort((a, b) => a - b)).toEqual(users(1, 400))
      // Each user received it once, except user 250 whose first try failed.
      const received = yield* deliveredUsers
      expect(received.length).toBe(400)
      expect(new Set(received).size).toBe(400)
    }).pipe(Effect.provide(engine({
      recording: { failure: Recording.failUsers([UserId.make(k)], { reason: "Permanent", times: 1 }) }
    }))))

  it.effect("a notifier that throws at user 30 ends the round CANCELED_BY_ERROR at 29, named as such; resume completes it", () =>
    Effect.gen(function*() {
      yield* seed({ subscribers: 60, stock: 10 })
      const restock = yield* Restock
      const failed = yield* runRound(productId)

      expect(failed.status).toBe("CANCELED_BY_ERROR")
      expect(failed.lastSentUserId).toBe(29)
      expect(failed.error).toContain("the notifier failed unexpectedly")
      expect(failed.error).toContain("the notifier broke")
      const recorded = yield* recordedUsers(productId, failed.restockRound)
      expect(failed.sentCount).toBe(recorded.length)
      expect(recorded).not.toContain(30)

      yield* restock.resume(productId)
      const done = yield* finish(productId, failed.restockRound)
      expect(done.status).toBe("COMPLETED")
      const all = yield* recordedUsers(productId, done.restockRound)
      expect([...all].sort((a, b) => a - b)).toEqual(users(1, 60))
    }).pipe(Effect.provide(engine({
      recording: {
        onReceive: (call) =>
          call.notification.userId === 30 && call.attempt === 1 ? Effect.die(new Error("the notifier broke")) : Effect.void
      }
    }))))

  it.effect("overlapping sends that complete out of order, with a failure in the middle: the prefix stays contiguous", () =>
    Effect.gen(function*() {
      yield* seed({ subscribers: 60, stock: 10 })
      const restock = yield* Restock
      const failed = yield* runRound(productId)
      const recorded = yield* recordedUsers(productId, failed.restockRound)

      expect(failed.status).toBe("CANCELED_BY_ERROR")
      expect(failed.lastSentUserId).toBe(19)
      // Later users whose sends were already in flight succeeded and were recorded.
      expect(recorded.some((user) => user > 20)).toBe(true)
      expect(recorded).not.toContain(20)
      expect(failed.sentCount).toBe(recorded.length)

      yield* restock.resume(productId)
      const done = yield* finish(productId, failed.restockRound)
      expect(done.status).toBe("COMPLETED")
      expect(done.sentCount).toBe(60)
      expect(done.lastSentUserId).toBe(60)
      const received = yield* deliveredUsers
      expect(received.length).toBe(60)
      expect(new Set(received).size).toBe(60)
    }).pipe(Effect.provide(engine({
      recording: {
        // 5 to 40 ms, varying by user: later sends overtake earlier ones.
        latency: (call) => Duration.millis(5 + ((call.notification.userId * 7) % 36)),
        failure: Recording.failUsers([UserId.make(20)], { reason: "Permanent", times: 1 })
      }
    }))))

  it.effect("a resume that fills the gap before users recorded earlier extends the prefix over them", () =>
    Effect.gen(function*() {
      yield* seed({ subscribers: 4, stock: 10 })
      const restock = yield* Restock
      const failed = yield* runRound(productId)
      // User 3 fails after user 4's send, started after it, already succeeded.
      expect(failed).toMatchObject({ status: "CANCELED_BY_ERROR", lastSentUserId: 2, sentCount: 3 })
      expect(yield* recordedUsers(productId, failed.restockRound)).toEqual([1, 2, 4])

      yield* restock.resume(productId)
      const done = yield* finish(productId, failed.restockRound)
      expect(done).toMatchObject({ status: "COMPLETED", lastSentUserId: 4, sentCount: 4 })
      expect((yield* deliveredUsers).filter((user) => user === 4)).toHaveLength(1)
    }).pipe(Effect.provide(engine({
      recording: {
        latency: (call) => Duration.millis(call.notification.userId === 3 ? 30 : 1),
        failure: Recording.failUsers([UserId.make(3)], { reason: "Permanent", times: 1 })
      }
    }))))

  /** A notifier that throws at user 3, in each of the port's two forms. */
  const throwingNotifiers: ReadonlyArray<readonly [string, Context.Tag.Service<typeof Notifier>]> = [
    ["its effect dies", {
      send: (notification) => notification.userId === 3 ? Effect.die(new Error("boom")) : Effect.void
    }],
    ["its callback throws", {
      send: () => Effect.void,
      start: (notification, done) => {
        if (notification.userId === 3) throw new Error("boom")
        done(Exit.void)
        return () => {}
      }
    }]
  ]

  for (const [form, notifier] of throwingNotifiers) {
    it.effect(`a notifier that throws (${form}) ends the round CANCELED_BY_ERROR at the user before, without hanging`, () =>
      Effect.gen(function*() {
        yield* seed({ subscribers: 5, stock: 10 })
        const round = yield* runRound(productId)
        expect(round).toMatchObject({ status: "CANCELED_BY_ERROR", lastSentUserId: 2 })
        expect(round.error).toContain("the notifier failed unexpectedly: boom")
      }).pipe(Effect.provide(
        RestockLive.layer.pipe(Layer.provideMerge(Layer.merge(ports(), Layer.succeed(Notifier, notifier))))
      )))
  }

  for (const [path, callback] of [["through the notifier's callback", true], ["through `send` alone: a notifier without a callback", false]] as const) {
    it.effect(`a transient failure is retried with backoff; one that persists ends the round within seconds (${path})`, () =>
      Effect.gen(function*() {
        yield* seed({ subscribers: 10, stock: 10 })
        const round = yield* runRound(productId, { virtualTime: "10 seconds" })
        const calls = yield* (yield* Recording.Recording).calls
        expect(round.status).toBe("CANCELED_BY_ERROR")
        expect(round.error).toContain("4 attempts")
        expect(calls.filter((call) => call.notification.userId === 5).length).toBe(4)
        expect(round.lastSentUserId).toBe(4)
        expect(round.finishedAt!.getTime() - round.startedAt.getTime()).toBeLessThan(5_000)
      }).pipe(Effect.provide(engine({ recording: { failure: Recording.failUsers([UserId.make(5)]), callback } }))))
  }

  it.effect("nothing to resume: no round, a completed round, a round still running", () =>
    Effect.gen(function*() {
      const restock = yield* Restock
      yield* seed({ subscribers: 100, stock: 10 })
      expect((yield* Effect.flip(restock.resume(productId)))._tag).toBe("NothingToResume")
      const running = yield* restock.trigger(productId)
      expect((yield* Effect.flip(restock.resume(productId)))._tag).toBe("NothingToResume")
      yield* finish(productId, running.restockRound)
      expect((yield* Effect.flip(restock.resume(productId)))._tag).toBe("NothingToResume")
      expect((yield* Effect.flip(restock.resume(ProductId.make(999))))._tag).toBe("ProductNotFound")
    }).pipe(Effect.provide(engine())))
})

describe("shutdown", () => {
  const hundredthSignal = Effect.runSync(Deferred.make<void>())
  it.effect("closing the service halts the round: in-flight sends recorded, CANCELED_BY_ERROR 'shutdown', resumed without repeats", () =>
    Effect.gen(function*() {
      yield* seed({ subscribers: 300, stock: 10 })

      // The first service instance, shut down once the 100th notification has arrived.
      const firstLife = yield* Scope.make()
      const restock = Context.get(yield* Layer.buildWithScope(RestockLive.layer, firstLife), Restock)
      const opened = yield* restock.trigger(productId)
      const clock = yield* Effect.fork(TestClock.adjust("1 minute"))
      yield* Deferred.await(hundredthSignal)
      yield* Fiber.interrupt(clock)
      // Shutting down awaits the sends in flight, which answer after 15 virtual ms.
      const closing = yield* Effect.fork(Scope.close(firstLife, Exit.void))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)

      const repo = yield* Repo
      const halted = yield* Effect.flatten(repo.getRound(productId, opened.restockRound))
      const sentBeforeShutdown = (yield* deliveredUsers).length
      expect(halted.status).toBe("CANCELED_BY_ERROR")
      expect(halted.error).toBe("shutdown")
      expect(halted.sentCount).toBe(sentBeforeShutdown)
      expect(sentBeforeShutdown).toBeGreaterThanOrEqual(100)
      expect(sentBeforeShutdown).toBeLessThan(300)
      expect(halted.lastSentUserId).toBe(sentBeforeShutdown)

      // The next instance resumes the same round.
      const secondLife = yield* Scope.make()
      const restarted = Context.get(yield* Layer.buildWithScope(RestockLive.layer, secondLife), Restock)
      const resumed = yield* restarted.resume(productId)
      expect(resumed.restockRound).toBe(opened.restockRound)
      const waiter = yield* Effect.fork(restarted.awaitRound(productId, resumed.restockRound))
      yield* TestClock.adjust("1 minute")
      const done = yield* Fiber.join(waiter)
      yield* Scope.close(secondLife, Exit.void)

      expect(done.status).toBe("COMPLETED")
      expect(done.sentCount).toBe(300)
      const received = yield* deliveredUsers
      expect(received).toEqual(users(1, 300))
    }).pipe(Effect.provide(ports({
      recording: {
        latency: "15 millis",
        onReceive: (call) => call.index === 100 ? Effect.asVoid(Deferred.succeed(hundredthSignal, undefined)) : Effect.void
      }
    }))))
})
