/**
 * Redis or MariaDB going away mid-round (SPEC §3.4, issue 5): the service
 * process stays up, answers every request in bounded time, says it is not
 * ready while a dependency is down and ready again once it is back; the round
 * ends `CANCELED_BY_ERROR` once its state can be written, and resuming it
 * then notifies everyone else exactly once.
 *
 * Each test puts a TCP proxy between the instance and the shared server and
 * cuts it, so nothing else on the machine notices.
 */
import { expect, layer } from "@effect/vitest"
import { DispatchSettings, unrecordedWindow } from "../../src/Dispatch/Settings.js"
import { Effect, Fiber } from "effect"
import { countsByUser, range, repeats, webhooksOf } from "../support/Deliveries.js"
import * as TestSender from "../support/Sender.js"
import {
  awaitTerminal,
  Backing,
  eventually,
  expectStatus,
  historyOf,
  layerBacking,
  type RoundJson,
  seedProduct,
  type ServiceProcess,
  start,
  throughProxy,
  trigger
} from "../support/Service.js"
import * as TcpProxy from "../support/TcpProxy.js"

/** Sends started but not yet recorded, at the default limit: what may still arrive after the round was told to stop. */
const maxInFlight = unrecordedWindow(DispatchSettings.defaults, 500)
const subscribers = 1_500

const log = (line: string) => Effect.sync(() => console.log(`[outages] ${line}`))

const upstreamOf = (url: string) => {
  const parsed = new URL(url)
  return { host: parsed.hostname, port: Number(parsed.port) }
}

/** Every endpoint kind answers within `seconds` (the request fails the test otherwise); the statuses, by path. */
const everyRequestAnswers = (service: ServiceProcess, productId: number, seconds: number) =>
  Effect.gen(function*() {
    const timeout = `${seconds} seconds` as const
    const asked = [
      ["GET", "/health/live", undefined],
      ["GET", "/health/ready", undefined],
      ["GET", `/products/${productId}`, undefined],
      ["GET", `/products/${productId}/notifications`, undefined],
      ["PUT", `/admin/products/${productId}/stock`, { stock: 5 }],
      ["PUT", `/products/${productId + 1}/subscriptions/99999`, undefined],
      ["POST", `/products/${productId + 1}/notifications/re-stock`, undefined]
    ] as const
    const answers: Record<string, number> = {}
    const timings: Array<string> = []
    for (const [method, path, body] of asked) {
      const reply = yield* service.request(method, path, { body, timeout })
      answers[`${method} ${path}`] = reply.status
      timings.push(`${method} ${path} ${reply.status} in ${reply.elapsedMs.toFixed(0)} ms`)
    }
    yield* log(`while away: ${timings.join("; ")}`)
    return answers
  })

layer(layerBacking, { excludeTestServices: true, timeout: "3 minutes" })("dependencies going away mid-round", (it) => {
  it.scoped("Redis cut mid-round: CANCELED_BY_ERROR, 503 while down, 200 after, then resume completes the round", () =>
    Effect.gen(function*() {
      const backing = yield* Backing
      const sender = yield* TestSender.start({ latency: { minMs: 10, maxMs: 30 } })
      const proxy = yield* TcpProxy.start(upstreamOf(backing.redisUrl))
      const service = yield* start({
        name: "instance",
        ...backing,
        redisUrl: throughProxy(backing.redisUrl, proxy.port),
        webhookUrl: sender.url
      })
      const productId = 401
      yield* seedProduct(service, productId, { stock: 10, subscribers })
      yield* seedProduct(service, productId + 1, { stock: 10, subscribers: 10, firstUser: 50_000 })
      const opened = yield* trigger(service, productId)
      yield* sender.awaitArrivals(300).pipe(Effect.timeout("20 seconds"), Effect.orDie)

      yield* proxy.cut
      const cutAt = Date.now()
      const ended = yield* awaitTerminal(service, productId, opened.restockRound, "15 seconds")
      const endedAfter = Date.now() - cutAt
      const down = yield* service.request("GET", "/health/ready", { token: null, timeout: "5 seconds" })
      const answers = yield* everyRequestAnswers(service, productId, 8)
      const sentBeforeCut = webhooksOf(sender, productId, opened.restockRound).filter((webhook) => webhook.at <= cutAt)
      const afterCut = webhooksOf(sender, productId, opened.restockRound).length - sentBeforeCut.length
      yield* log(`Redis cut after ${sentBeforeCut.length} arrivals: round ended ${ended.status} ${endedAfter} ms later ` +
        `("${ended.error}"), ${afterCut} arrived after the cut`)

      expect(ended.status).toBe("CANCELED_BY_ERROR")
      expect(ended.error).toMatch(/redis/i)
      expect(down.status).toBe(503)
      expect(down.body).toMatchObject({ _tag: "NotReady", stockCache: "down", database: "up" })
      expect(answers["GET /health/live"]).toBe(200)
      // A round opened meanwhile cannot watch its stock: it ends in error at once, resumable later.
      expect(answers[`POST /products/${productId + 1}/notifications/re-stock`]).toBe(202)
      expect(yield* awaitTerminal(service, productId + 1, 1, "10 seconds")).toMatchObject({
        status: "CANCELED_BY_ERROR",
        error: expect.stringMatching(/redis/i)
      })
      // Sends in flight at the cut were awaited; no new one started.
      expect(afterCut).toBeLessThanOrEqual(maxInFlight)
      expect(service.isRunning()).toBe(true)

      yield* proxy.restore
      const restoredAt = Date.now()
      yield* eventually(
        "readiness once Redis is back",
        service.request("GET", "/health/ready", { token: null, timeout: "5 seconds" }),
        (reply) => reply.status === 200,
        "15 seconds"
      )
      yield* log(`ready again ${Date.now() - restoredAt} ms after Redis came back`)

      const resumed = yield* service.request("POST", `/admin/products/${productId}/notifications/re-stock`)
      expect(expectStatus(service, "resuming", resumed, 202).body).toMatchObject({ restockRound: opened.restockRound })
      const done = yield* awaitTerminal(service, productId, opened.restockRound)
      const all = webhooksOf(sender, productId, opened.restockRound)

      expect(done).toMatchObject({ status: "COMPLETED", sentCount: subscribers, lastSentUserId: subscribers })
      // Every send in flight at the cut was recorded, so nobody got it twice.
      expect([...countsByUser(all).keys()].sort((a, b) => a - b)).toEqual(range(1, subscribers))
      expect(repeats(all)).toBe(0)
      expect((yield* historyOf(productId, opened.restockRound)).map((row) => row.userId).sort((a, b) => a - b))
        .toEqual(range(1, subscribers))
    }))

  it.scoped("MariaDB cut mid-round: 503 while down, every request answered, CANCELED_BY_ERROR once it is back, then resume completes", () =>
    Effect.gen(function*() {
      const backing = yield* Backing
      const sender = yield* TestSender.start({ latency: { minMs: 10, maxMs: 30 } })
      const proxy = yield* TcpProxy.start(upstreamOf(backing.databaseUrl))
      const service = yield* start({
        name: "instance",
        ...backing,
        databaseUrl: throughProxy(backing.databaseUrl, proxy.port),
        webhookUrl: sender.url
      })
      const productId = 411
      yield* seedProduct(service, productId, { stock: 10, subscribers })
      yield* seedProduct(service, productId + 1, { stock: 10, subscribers: 10, firstUser: 50_000 })
      const opened = yield* trigger(service, productId)
      yield* sender.awaitArrivals(300).pipe(Effect.timeout("20 seconds"), Effect.orDie)

      yield* proxy.cut
      const cutAt = Date.now()
      const down = yield* service.request("GET", "/health/ready", { token: null, timeout: "5 seconds" })
      const answers = yield* everyRequestAnswers(service, productId, 8)
      // The round cannot write anything, not even its end: it stops sending and waits for the database.
      yield* Effect.sleep("1 second")
      const whileDown = webhooksOf(sender, productId, opened.restockRound)
      const afterCut = whileDown.filter((webhook) => webhook.at > cutAt).length
      yield* log(`MariaDB cut after ${whileDown.length - afterCut} arrivals; ${afterCut} arrived after the cut`)

      expect(down.status).toBe(503)
      expect(down.body).toMatchObject({ _tag: "NotReady", database: "down" })
      expect(answers["GET /health/live"]).toBe(200)
      expect(answers[`GET /products/${productId}`]).toBe(503)
      expect(afterCut).toBeLessThanOrEqual(maxInFlight)
      expect(service.isRunning()).toBe(true)

      yield* proxy.restore
      const restoredAt = Date.now()
      const ended = yield* awaitTerminal(service, productId, opened.restockRound, "40 seconds")
      yield* eventually(
        "readiness once MariaDB is back",
        service.request("GET", "/health/ready", { token: null, timeout: "5 seconds" }),
        (reply) => reply.status === 200,
        "15 seconds"
      )
      const sentBeforeResume = webhooksOf(sender, productId, opened.restockRound).length
      yield* log(`round ended ${ended.status} ("${ended.error}") ${Date.now() - restoredAt} ms after MariaDB came back, ` +
        `${ended.sentCount} recorded of ${sentBeforeResume} sent`)

      expect(ended.status).toBe("CANCELED_BY_ERROR")
      // What was sent before and during the outage was recorded once the database was back.
      expect(ended.sentCount).toBe(sentBeforeResume)
      expect(webhooksOf(sender, productId, opened.restockRound).length).toBe(sentBeforeResume)

      const resumed = yield* service.request("POST", `/admin/products/${productId}/notifications/re-stock`)
      expect(expectStatus(service, "resuming", resumed, 202).body as RoundJson).toMatchObject({
        restockRound: opened.restockRound
      })
      const done = yield* awaitTerminal(service, productId, opened.restockRound)
      const all = webhooksOf(sender, productId, opened.restockRound)

      expect(done).toMatchObject({ status: "COMPLETED", sentCount: subscribers, lastSentUserId: subscribers })
      expect([...countsByUser(all).keys()].sort((a, b) => a - b)).toEqual(range(1, subscribers))
      expect(repeats(all)).toBe(0)
      expect((yield* historyOf(productId, opened.restockRound)).map((row) => row.userId).sort((a, b) => a - b))
        .toEqual(range(1, subscribers))
    }))
})

/**
 * The same dependencies, partitioned rather than down: connections stay
 * open and nothing comes back. Nothing fails fast then; what bounds every
 * request is the timeouts.
 */
layer(layerBacking, { excludeTestServices: true, timeout: "3 minutes" })("dependencies that stop answering mid-round", (it) => {
  it.scoped("Redis stalled mid-round: every request answered within seconds, the round ends, resume completes it", () =>
    Effect.gen(function*() {
      const backing = yield* Backing
      const sender = yield* TestSender.start({ latency: { minMs: 10, maxMs: 30 } })
      const proxy = yield* TcpProxy.start(upstreamOf(backing.redisUrl))
      const service = yield* start({
        name: "instance",
        ...backing,
        redisUrl: throughProxy(backing.redisUrl, proxy.port),
        webhookUrl: sender.url
      })
      const productId = 421
      yield* seedProduct(service, productId, { stock: 10, subscribers })
      yield* seedProduct(service, productId + 1, { stock: 10, subscribers: 10, firstUser: 50_000 })
      const opened = yield* trigger(service, productId)
      yield* sender.awaitArrivals(300).pipe(Effect.timeout("20 seconds"), Effect.orDie)

      yield* proxy.stall
      const stalledAt = Date.now()
      const roundEnd = yield* awaitTerminal(service, productId, opened.restockRound, "20 seconds").pipe(
        Effect.map((round) => ({ round, after: Date.now() - stalledAt })),
        Effect.fork
      )
      const down = yield* service.request("GET", "/health/ready", { token: null, timeout: "5 seconds" })
      const answers = yield* everyRequestAnswers(service, productId, 10)
      const { after, round: ended } = yield* Fiber.join(roundEnd)
      yield* log(`Redis stalled: ready answered ${down.status} in ${down.elapsedMs.toFixed(0)} ms; round ended ` +
        `${ended.status} ("${ended.error}") ${after} ms after the stall`)

      expect(down.status).toBe(503)
      expect(down.elapsedMs).toBeLessThan(3_000)
      expect(answers["GET /health/live"]).toBe(200)
      // Changing stock needs Redis: refused once the command times out.
      expect(answers[`PUT /admin/products/${productId}/stock`]).toBe(503)
      expect(ended.status).toBe("CANCELED_BY_ERROR")
      expect(ended.error).toMatch(/redis/i)
      expect(service.isRunning()).toBe(true)

      yield* proxy.restore
      yield* eventually(
        "readiness once Redis answers again",
        service.request("GET", "/health/ready", { token: null, timeout: "5 seconds" }),
        (reply) => reply.status === 200,
        "15 seconds"
      )
      const resumed = yield* service.request("POST", `/admin/products/${productId}/notifications/re-stock`)
      expectStatus(service, "resuming", resumed, 202)
      const done = yield* awaitTerminal(service, productId, opened.restockRound)
      const all = webhooksOf(sender, productId, opened.restockRound)
      expect(done).toMatchObject({ status: "COMPLETED", sentCount: subscribers, lastSentUserId: subscribers })
      expect([...countsByUser(all).keys()].sort((a, b) => a - b)).toEqual(range(1, subscribers))
      expect(repeats(all)).toBe(0)
    }))

  it.scoped("MariaDB stalled mid-round: every request answered within seconds, sends stop at the unrecorded window, the round completes (resumed if it ended)", () =>
    Effect.gen(function*() {
      const backing = yield* Backing
      const sender = yield* TestSender.start({ latency: { minMs: 10, maxMs: 30 } })
      const proxy = yield* TcpProxy.start(upstreamOf(backing.databaseUrl))
      const service = yield* start({
        name: "instance",
        ...backing,
        databaseUrl: throughProxy(backing.databaseUrl, proxy.port),
        webhookUrl: sender.url
      })
      const productId = 431
      yield* seedProduct(service, productId, { stock: 10, subscribers })
      yield* seedProduct(service, productId + 1, { stock: 10, subscribers: 10, firstUser: 50_000 })
      const opened = yield* trigger(service, productId)
      yield* sender.awaitArrivals(300).pipe(Effect.timeout("20 seconds"), Effect.orDie)

      yield* proxy.stall
      const stalledAt = Date.now()
      const down = yield* service.request("GET", "/health/ready", { token: null, timeout: "5 seconds" })
      const answers = yield* everyRequestAnswers(service, productId, 10)
      yield* Effect.sleep("1 second")
      const whileStalled = webhooksOf(sender, productId, opened.restockRound)
      const afterStall = whileStalled.filter((webhook) => webhook.at > stalledAt).length
      yield* log(`MariaDB stalled: ready answered ${down.status} in ${down.elapsedMs.toFixed(0)} ms; ` +
        `${afterStall} arrived after the stall`)

      expect(down.status).toBe(503)
      expect(down.elapsedMs).toBeLessThan(3_000)
      expect(answers["GET /health/live"]).toBe(200)
      expect(answers[`GET /products/${productId}`]).toBe(503)
      // A write that hangs stops the sends once the window of unrecorded sends is full: those
      // in flight at the stall, and the ones started while the window had room.
      expect(afterStall).toBeLessThanOrEqual(maxInFlight)
      expect(service.isRunning()).toBe(true)

      yield* proxy.restore
      const restoredAt = Date.now()
      const ended = yield* awaitTerminal(service, productId, opened.restockRound, "40 seconds")
      yield* log(`round ended ${ended.status} ("${ended.error}") ${Date.now() - restoredAt} ms after MariaDB answered again`)
      yield* eventually(
        "readiness once MariaDB answers again",
        service.request("GET", "/health/ready", { token: null, timeout: "5 seconds" }),
        (reply) => reply.status === 200,
        "15 seconds"
      )
      // A stall shorter than the write retry window is ridden out: the sends wait with their
      // records and go on once MariaDB answers (COMPLETED). A longer one, or a page read that
      // times out, ends the round CANCELED_BY_ERROR, and a resume completes it.
      expect(["COMPLETED", "CANCELED_BY_ERROR"]).toContain(ended.status)
      if (ended.status === "CANCELED_BY_ERROR") {
        const resumed = yield* service.request("POST", `/admin/products/${productId}/notifications/re-stock`)
        expectStatus(service, "resuming", resumed, 202)
      }
      const done = yield* awaitTerminal(service, productId, opened.restockRound)
      const all = webhooksOf(sender, productId, opened.restockRound)
      expect(done).toMatchObject({ status: "COMPLETED", sentCount: subscribers, lastSentUserId: subscribers })
      expect([...countsByUser(all).keys()].sort((a, b) => a - b)).toEqual(range(1, subscribers))
      expect(repeats(all)).toBe(0)
    }))
})
