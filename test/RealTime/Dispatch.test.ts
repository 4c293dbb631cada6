/**
 * The dispatch scenarios of SPEC §3 once more in real time, end to end: a
 * real service process on MariaDB and Redis, sending through the webhook
 * notifier to a local HTTP sender that answers in 20 ± 10 ms and timestamps
 * every request where it arrives — where the third party measures the limit.
 *
 * One instance and one sender serve the whole file; each scenario has its own
 * product, and reads only its own requests (by `Idempotency-Key`).
 */
import { expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { Redis } from "ioredis"
import { loadavg } from "node:os"
import { DispatchSettings, unrecordedWindow } from "../../src/Dispatch/Settings.js"
import {
  arrivalInversions,
  countsByUser,
  checkLimit,
  describeLimitCheck,
  range,
  rateOf,
  repeats,
  startsInSubscriptionOrder,
  rateBar,
  realTimeLimit,
  succeeded,
  webhooksOf
} from "../support/Deliveries.js"
import * as TestSender from "../support/Sender.js"
import {
  awaitTerminal,
  Backing,
  expectStatus,
  historyOf,
  layerBacking,
  type RoundJson,
  seedProduct,
  type ServiceProcess,
  start,
  trigger
} from "../support/Service.js"

const limit = realTimeLimit

/** Sends started but not yet recorded: what may still arrive after the round was told to stop. */
const maxInFlight = unrecordedWindow(DispatchSettings.defaults, limit)
/**
 * Users 1..n recorded once each. Records are written as sends settle, so
 * their order (the recipients' order) follows subscription order within the
 * window of sends not yet recorded, never further off.
 */
const expectRecordedOnceEach = (history: ReadonlyArray<{ readonly userId: number }>, n: number) => {
  expect(history.map((row) => row.userId).sort((a, b) => a - b)).toEqual(range(1, n))
  history.forEach((row, i) => expect(Math.abs(row.userId - (i + 1))).toBeLessThan(maxInFlight))
}


class Deployment extends Context.Tag("test/RealTime/Deployment")<Deployment, {
  readonly service: ServiceProcess
  readonly sender: TestSender.TestSender
  readonly backing: Context.Tag.Service<Backing>
}>() {}

const deployment = Layer.scoped(
  Deployment,
  Effect.gen(function*() {
    const backing = yield* Backing
    const sender = yield* TestSender.start({ latency: { minMs: 10, maxMs: 30 } })
    const service = yield* start({ name: "instance", ...backing, webhookUrl: sender.url, rateLimitPerSecond: limit })
    return { service, sender, backing }
  })
).pipe(Layer.provideMerge(layerBacking))

/** Triggers a round and waits for its end. */
const runRound = (productId: number, body?: { readonly stock: number }) =>
  Effect.gen(function*() {
    const { service } = yield* Deployment
    const opened = yield* trigger(service, productId, body)
    expect(opened.status).toBe("IN_PROGRESS")
    return yield* awaitTerminal(service, productId, opened.restockRound)
  })

/** Once `count` requests of the product have arrived at the sender. */
const afterArrivals = (productId: number, count: number) =>
  Effect.gen(function*() {
    const { sender } = yield* Deployment
    const deadline = Date.now() + 20_000
    while (webhooksOf(sender, productId).length < count) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`${count} requests of product ${productId} never arrived`))
      yield* Effect.sleep("2 millis")
    }
  })

/** A Redis client of the test's own, as an order system writing stock would have. */
const orderSystem = Effect.flatMap(Deployment, ({ backing }) =>
  Effect.acquireRelease(
    Effect.sync(() => new Redis(backing.redisUrl, { lazyConnect: false })),
    (client) => Effect.promise(() => client.quit().catch(() => "OK"))
  ))

const log = (line: string) => Effect.sync(() => console.log(`[real time] ${line}`))

/** The service's CPU time per send over a round: what decides whether it can keep up with the limit at all. */
const cpuPerSend = (before: number | undefined, after: number | undefined, sends: number): string =>
  before === undefined || after === undefined ? "unknown" : `${((after - before) / sends).toFixed(2)} ms`

layer(deployment, { excludeTestServices: true, timeout: "2 minutes" })("a real-time round on MariaDB, Redis and a webhook sender", (it) => {
  it.effect("1,200 subscribers: each notified once, starts in subscription order, never over the limit in any sliding second, ≥ 90 % of it", () =>
    Effect.gen(function*() {
      const { sender, service } = yield* Deployment
      const productId = 101
      const subscribers = 1_200
      yield* seedProduct(service, productId, { stock: 10, subscribers })
      let best = 0
      // Attempt 0 is the fresh process's first round: checked like the others, but its rate is
      // not counted (it loses a few per cent to compiling the send path; the README says so, and
      // the bench reports it on its own). Then up to 3 counted attempts.
      for (let attempt = 0; attempt <= 3 && (attempt === 0 || best < rateBar * limit); attempt++) {
        const cpuBefore = service.cpuMillis()
        sender.resetReceiverStall()
        const round = yield* runRound(productId)
        const stall = sender.receiverStallMs()
        const cpu = cpuPerSend(cpuBefore, service.cpuMillis(), subscribers)
        const webhooks = webhooksOf(sender, productId, round.restockRound)
        const rate = rateOf(webhooks)
        const limitCheck = checkLimit(webhooks, limit)
        yield* log(`round ${round.restockRound}: ${rate.arrivals} arrivals, ${describeLimitCheck(limitCheck)} ` +
          `(receiver stalled ${stall.toFixed(1)} ms), ` +
          `achieved ${rate.achieved.toFixed(1)}/s (${(rate.achieved / limit * 100).toFixed(1)} %), ` +
          `arrival inversions ${arrivalInversions(webhooks)}, service CPU ${cpu} per send, load ${loadavg()[0]!.toFixed(1)}` +
          (attempt === 0 ? " (the process's first round: not counted)" : ""))

        expect(round).toMatchObject({ status: "COMPLETED", sentCount: subscribers, lastSentUserId: subscribers, error: null })
        // Every user exactly once at the sender, and exactly one record each, recorded as sends settled.
        expect([...countsByUser(webhooks).entries()].sort(([a], [b]) => a - b))
          .toEqual(range(1, subscribers).map((user) => [user, 1]))
        expectRecordedOnceEach(yield* historyOf(productId, round.restockRound), subscribers)
        expect(startsInSubscriptionOrder(webhooks)).toBe(true)
        // Never over the limit in any sliding second: as started, and as the receiver saw it.
        expect(limitCheck.startsWorst).toBeLessThanOrEqual(limit)
        expect(limitCheck.arrivalsWorst).toBeLessThanOrEqual(limit + limitCheck.allowance)
        if (attempt > 0) best = Math.max(best, rate.achieved)
      }
      // A shortfall with the CPU per send logged above near 1000 / limit ms means the process
      // cannot keep up on this machine (or was starved of CPU), not that the limiter spaces too widely.
      expect(best, "the best sustained rate of the attempts, at the sender (per second)").toBeGreaterThanOrEqual(rateBar * limit)
    }))

  it.effect("two products on one instance share the limit", () =>
    Effect.gen(function*() {
      const { sender, service } = yield* Deployment
      const [first, second] = [102, 103]
      yield* seedProduct(service, first, { stock: 10, subscribers: 700 })
      yield* seedProduct(service, second, { stock: 10, subscribers: 700, firstUser: 5_001 })
      let best = 0
      for (let attempt = 1; attempt <= 3 && best < rateBar * limit; attempt++) {
        sender.resetReceiverStall()
        const [a, b] = yield* Effect.all([runRound(first), runRound(second)], { concurrency: "unbounded" })
        const stall = sender.receiverStallMs()
        expect(a).toMatchObject({ status: "COMPLETED", sentCount: 700 })
        expect(b).toMatchObject({ status: "COMPLETED", sentCount: 700 })
        const both = [...webhooksOf(sender, first, a.restockRound), ...webhooksOf(sender, second, b.restockRound)]
        // While both were sending: from the later first arrival to the earlier last one.
        const overlap = {
          from: Math.max(...[first, second].map((id, i) => webhooksOf(sender, id, [a, b][i]!.restockRound)[0]!.at)),
          to: Math.min(...[first, second].map((id, i) => webhooksOf(sender, id, [a, b][i]!.restockRound).at(-1)!.at))
        }
        const rate = rateOf(both)
        const whileBoth = rateOf(both.filter((webhook) => webhook.at >= overlap.from && webhook.at <= overlap.to))
        const limitCheck = checkLimit(both, limit)
        yield* log(`two products: ${rate.arrivals} arrivals, ${describeLimitCheck(limitCheck)} ` +
          `(receiver stalled ${stall.toFixed(1)} ms), ` +
          `achieved ${rate.achieved.toFixed(1)}/s, while both sent ${whileBoth.achieved.toFixed(1)}/s`)
        expect(limitCheck.startsWorst).toBeLessThanOrEqual(limit)
        expect(limitCheck.arrivalsWorst).toBeLessThanOrEqual(limit + limitCheck.allowance)
        best = Math.max(best, rate.achieved)
      }
      // A shortfall with the CPU per send logged above near 1000 / limit ms means the process
      // cannot keep up on this machine (or was starved of CPU), not that the limiter spaces too widely.
      expect(best, "the best sustained rate of the attempts, at the sender (per second)").toBeGreaterThanOrEqual(rateBar * limit)
    }))

  it.effect("sold out through the admin API mid-round: CANCELED_BY_SOLD_OUT, no send starts after the stock reached 0", () =>
    Effect.gen(function*() {
      const { sender, service } = yield* Deployment
      const productId = 104
      yield* seedProduct(service, productId, { stock: 50, subscribers: 1_500 })
      const opened = yield* trigger(service, productId)
      yield* afterArrivals(productId, 300)
      const adjusted = yield* service.request("POST", `/admin/products/${productId}/stock/adjustments`, {
        body: { delta: -1_000_000 }
      })
      // The instance that answered is the one sending: its stock is 0 before it answers.
      const soldOutVisible = Date.now()
      expect(expectStatus(service, "adjusting stock", adjusted, 200).body).toMatchObject({ stock: 0, stockStatus: "OUT_OF_STOCK" })
      const round = yield* awaitTerminal(service, productId, opened.restockRound)
      yield* Effect.sleep("300 millis") // any straggler would have arrived by now
      const webhooks = webhooksOf(sender, productId, round.restockRound)
      const late = webhooks.filter((webhook) => webhook.at > soldOutVisible)
      yield* log(`sold out via the API after ${webhooks.length - late.length} arrivals; ${late.length} arrived after (in flight)`)

      expect(round.status).toBe("CANCELED_BY_SOLD_OUT")
      expect(webhooks.length).toBeLessThan(1_500)
      // No send started after the stock reached 0 was visible; the ones in flight may still arrive.
      expect(webhooks.filter((webhook) => webhook.sentAt > soldOutVisible)).toEqual([])
      expect(late.length).toBeLessThanOrEqual(maxInFlight)
      // Every send that reached the sender was recorded, once, and the prefix is contiguous.
      expectRecordedOnceEach(yield* historyOf(productId, round.restockRound), webhooks.length)
      expect(round).toMatchObject({ sentCount: webhooks.length, lastSentUserId: webhooks.length })
    }))

  it.scoped("sold out by an order system writing Redis (DECRBY, then PUBLISH stock-changed): CANCELED_BY_SOLD_OUT", () =>
    Effect.gen(function*() {
      const { backing, sender, service } = yield* Deployment
      const productId = 105
      yield* seedProduct(service, productId, { stock: 3, subscribers: 1_500 })
      const orders = yield* orderSystem
      const opened = yield* trigger(service, productId)
      yield* afterArrivals(productId, 300)
      // The documented contract: change the key atomically, then publish the product id.
      yield* Effect.promise(() => orders.decrby(`${backing.redisKeyPrefix}stock:${productId}`, 3))
      yield* Effect.promise(() => orders.publish(`${backing.redisKeyPrefix}stock-changed`, String(productId)))
      const published = Date.now()
      const round = yield* awaitTerminal(service, productId, opened.restockRound)
      yield* Effect.sleep("300 millis")
      const webhooks = webhooksOf(sender, productId, round.restockRound)
      const late = webhooks.filter((webhook) => webhook.at > published)
      const startedLate = webhooks.filter((webhook) => webhook.sentAt > published)
      yield* log(`sold out via Redis after ${webhooks.length - late.length} arrivals; ${late.length} arrived after ` +
        `the PUBLISH, ${startedLate.length} started after it (the message was on its way)`)

      expect(round.status).toBe("CANCELED_BY_SOLD_OUT")
      expect(webhooks.length).toBeLessThan(1_500)
      // The message takes a moment to reach the instance; after it, nothing starts.
      // (At 200/s a service that ignored it would start 20 sends in those 100 ms.)
      expect(webhooks.filter((webhook) => webhook.sentAt > published + 100)).toEqual([])
      expect(late.length).toBeLessThanOrEqual(maxInFlight + 5)
      expectRecordedOnceEach(yield* historyOf(productId, round.restockRound), webhooks.length)
      // `product.stock` follows a change made by another system.
      const product = yield* service.request("GET", `/products/${productId}`)
      expect(product.body).toMatchObject({ stock: 0, stockStatus: "OUT_OF_STOCK" })
    }))

  it.scoped("an order system writing the Redis key without the PUBLISH stops the round within a second (SPEC §3.14)", () =>
    Effect.gen(function*() {
      const { backing, sender, service } = yield* Deployment
      const productId = 109
      yield* seedProduct(service, productId, { stock: 3, subscribers: 1_500 })
      const orders = yield* orderSystem
      const opened = yield* trigger(service, productId)
      yield* afterArrivals(productId, 300)
      yield* Effect.promise(() => orders.set(`${backing.redisKeyPrefix}stock:${productId}`, "0")) // and nothing more
      const written = Date.now()
      const round = yield* awaitTerminal(service, productId, opened.restockRound)
      yield* Effect.sleep("300 millis")
      const webhooks = webhooksOf(sender, productId, round.restockRound)
      const startedAfter = webhooks.filter((webhook) => webhook.sentAt > written)
      const lastStart = Math.max(...webhooks.map((webhook) => webhook.sentAt))
      yield* log(`stock written without PUBLISH after ${webhooks.length - startedAfter.length} starts; ` +
        `${startedAfter.length} started after it, the last ${Math.max(0, lastStart - written)} ms after`)

      expect(round.status).toBe("CANCELED_BY_SOLD_OUT")
      expect(webhooks.length).toBeLessThan(1_500)
      expect(lastStart - written).toBeLessThanOrEqual(1_000)
      expectRecordedOnceEach(yield* historyOf(productId, round.restockRound), webhooks.length)
      // `product.stock` follows within a second too.
      const product = yield* service.request("GET", `/products/${productId}`)
      expect(product.body).toMatchObject({ stock: 0, stockStatus: "OUT_OF_STOCK" })
    }))

  it.effect("a sender failure at user 400 ends the round CANCELED_BY_ERROR at 399; resuming sends the rest once, same round", () =>
    Effect.gen(function*() {
      const { sender, service } = yield* Deployment
      const productId = 106
      const subscribers = 1_000
      yield* seedProduct(service, productId, { stock: 10, subscribers })
      // A permanent failure (400) for user 400 of this product, until the operator fixes it.
      sender.setScript((arrival) =>
        arrival.idempotencyKey?.startsWith(`${productId}:`) && arrival.userId === 400
          ? { status: 400, body: `{"error":"unknown recipient"}` }
          : undefined
      )
      const failed = yield* runRound(productId)
      sender.setScript(undefined)
      const before = webhooksOf(sender, productId, failed.restockRound)
      const inFlightPast = before.filter((webhook) => webhook.userId > 400).length
      yield* log(`failure at 400: ${before.length} requests, ${inFlightPast} after user 400 were in flight`)

      expect(failed.status).toBe("CANCELED_BY_ERROR")
      expect(failed.lastSentUserId).toBe(399)
      expect(failed.error).toContain("400")
      // Sends started before the failure was known overlap it: bounded by the in-flight slots,
      // and recorded (out of the contiguous prefix) since they succeeded.
      expect(inFlightPast).toBeLessThanOrEqual(maxInFlight)
      const recordedBefore = (yield* historyOf(productId, failed.restockRound)).map((row) => row.userId)
      expect(recordedBefore.sort((a, b) => a - b)).toEqual(succeeded(before).sort((a, b) => a - b))
      expect(recordedBefore).not.toContain(400)
      expect(failed.sentCount).toBe(recordedBefore.length)

      const resumed = yield* service.request("POST", `/admin/products/${productId}/notifications/re-stock`)
      const reopened = expectStatus(service, "resuming", resumed, 202).body as RoundJson
      expect(reopened).toMatchObject({ restockRound: failed.restockRound, status: "IN_PROGRESS" })
      const done = yield* awaitTerminal(service, productId, failed.restockRound)
      const all = webhooksOf(sender, productId, failed.restockRound)

      expect(done).toMatchObject({ status: "COMPLETED", sentCount: subscribers, lastSentUserId: subscribers })
      // Every user succeeded exactly once; only user 400 was asked twice (its 400, then its 200).
      expect(succeeded(all).sort((a, b) => a - b)).toEqual(range(1, subscribers))
      expect(repeats(all)).toBe(1)
      const history = (yield* historyOf(productId, failed.restockRound)).map((row) => row.userId)
      expect(history.sort((a, b) => a - b)).toEqual(range(1, subscribers))
      // The resume went on in subscription order from user 400.
      const afterResume = all.slice(before.length)
      expect(afterResume[0]!.userId).toBe(400)
      expect(startsInSubscriptionOrder(afterResume)).toBe(true)
    }))

  it.effect("a round started with stock 0 sends nothing and ends CANCELED_BY_SOLD_OUT", () =>
    Effect.gen(function*() {
      const { sender, service } = yield* Deployment
      const productId = 107
      yield* seedProduct(service, productId, { stock: 5, subscribers: 50 })
      const round = yield* runRound(productId, { stock: 0 })
      yield* Effect.sleep("200 millis")
      expect(round).toMatchObject({ status: "CANCELED_BY_SOLD_OUT", sentCount: 0, lastSentUserId: null })
      expect(webhooksOf(sender, productId)).toEqual([])
    }))

  it.effect("minimum stock and the fair share in a real round: exactly notifyPerUnit × (stock − minimumStock) notified, COMPLETED", () =>
    Effect.gen(function*() {
      const { sender, service } = yield* Deployment
      const productId = 110
      yield* seedProduct(service, productId, { stock: 60, subscribers: 300 })
      const controls = yield* service.request("PUT", `/admin/products/${productId}`, {
        body: { minimumStock: 10, notifyPerUnit: 2 }
      })
      expect(controls.body).toMatchObject({ stock: 60, minimumStock: 10, notifyPerUnit: 2, stockStatus: "IN_STOCK" })
      const round = yield* runRound(productId)
      const webhooks = webhooksOf(sender, productId, round.restockRound)
      expect(round).toMatchObject({ status: "COMPLETED", sentCount: 100, lastSentUserId: 100 })
      expect(webhooks.map((webhook) => webhook.userId).sort((a, b) => a - b)).toEqual(range(1, 100))
      expectRecordedOnceEach(yield* historyOf(productId, round.restockRound), 100)
    }))

  it.effect("a round without subscribers completes with nothing sent", () =>
    Effect.gen(function*() {
      const { sender, service } = yield* Deployment
      const productId = 108
      yield* seedProduct(service, productId, { stock: 5, subscribers: 0 })
      const round = yield* runRound(productId)
      expect(round).toMatchObject({ status: "COMPLETED", sentCount: 0, lastSentUserId: null })
      expect(webhooksOf(sender, productId)).toEqual([])
    }))
})
