import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Either, Fiber, Layer, Option, TestClock } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { Notification } from "../../src/Domain/Delivery.js"
import { ProductId, RestockRound, UserId } from "../../src/Domain/Ids.js"
import { Notifier, type SendFailed } from "../../src/Notifier/Notifier.js"
import * as Webhook from "../../src/Notifier/Webhook.js"
import * as TestSender from "../support/Sender.js"

const notification = (userId: number) =>
  new Notification({
    userId: UserId.make(userId),
    productId: ProductId.make(7),
    productName: "Desk lamp",
    restockRound: RestockRound.make(3),
    sentAt: new Date("2026-11-25T10:00:00.250Z"),
    unsubscribeUrl: `https://shop.example/unsubscribe/token-of-${userId}`
  })

/** The webhook notifier pointed at `url`, released with the test's scope. */
const webhook = (options: Webhook.WebhookOptions) =>
  Effect.map(Layer.build(Webhook.layer(options)), Context.get(Notifier))

/** The failure of a send that must fail. */
const failureOf = (effect: Effect.Effect<void, SendFailed>) =>
  Effect.flatMap(Effect.either(effect), (result) =>
    Either.isLeft(result) ? Effect.succeed(result.left) : Effect.dieMessage("expected the send to fail"))

const reply = (status: number, headers: Record<string, string> = {}, body = ""): TestSender.Reply => ({ status, headers, body })

describe("Webhook notifier", () => {
  it.scopedLive("POSTs the notification as JSON with its Idempotency-Key", () =>
    Effect.gen(function*() {
      const sender = yield* TestSender.start()
      const notifier = yield* webhook({ url: sender.url })

      yield* notifier.send(notification(42))

      const [arrival] = sender.arrivals()
      expect(sender.arrivals()).toHaveLength(1)
      expect(arrival!.method).toBe("POST")
      expect(arrival!.path).toBe("/notify")
      expect(arrival!.contentType).toBe("application/json")
      expect(arrival!.idempotencyKey).toBe("7:3:42")
      expect(JSON.parse(arrival!.rawBody)).toStrictEqual({
        userId: 42,
        productId: 7,
        productName: "Desk lamp",
        restockRound: 3,
        sentAt: "2026-11-25T10:00:00.250Z",
        unsubscribeUrl: "https://shop.example/unsubscribe/token-of-42"
      })
      // Our trace context is none of the third party's business.
      expect(arrival!.headers).not.toHaveProperty("traceparent")
      expect(arrival!.headers).not.toHaveProperty("b3")
    }))

  it.scopedLive("reuses one kept-alive connection for sequential sends, failed ones included", () =>
    Effect.gen(function*() {
      const sender = yield* TestSender.start({
        // Failures carry a body larger than the client's read buffer: a body left
        // unread would hold its socket, and the next send would open another.
        script: (arrival) => arrival.index % 3 === 0 ? reply(503, {}, "try later ".repeat(50_000)) : undefined
      })
      const notifier = yield* webhook({ url: sender.url })

      for (let user = 1; user <= 60; user++) yield* Effect.either(notifier.send(notification(user)))

      expect(sender.arrivals()).toHaveLength(60)
      // undici frees a socket for the next request a tick after the response
      // is read, so back-to-back sends alternate between two kept-alive sockets.
      expect(sender.connections()).toBeLessThanOrEqual(2)
    }))

  it.scopedLive("keeps a pool of connections for concurrent sends instead of a socket per request", () =>
    Effect.gen(function*() {
      const sender = yield* TestSender.start({ latency: { minMs: 10, maxMs: 30 } })
      const notifier = yield* webhook({ url: sender.url })

      for (let wave = 0; wave < 4; wave++) {
        yield* Effect.forEach(
          Array.from({ length: 50 }, (_, i) => wave * 50 + i + 1),
          (user) => notifier.send(notification(user)),
          { concurrency: "unbounded", discard: true }
        )
      }

      expect(sender.arrivals()).toHaveLength(200)
      // At most the pool's size, however many waves go through it.
      expect(sender.connections()).toBeGreaterThanOrEqual(50)
      expect(sender.connections()).toBeLessThanOrEqual(Webhook.defaultConnections)
    }))

  it.scopedLive("bounds the pool by `connections`, queueing the sends beyond it", () =>
    Effect.gen(function*() {
      const sender = yield* TestSender.start({ latency: 5 })
      const notifier = yield* webhook({ url: sender.url, connections: 4 })

      yield* Effect.forEach(
        Array.from({ length: 40 }, (_, i) => i + 1),
        (user) => notifier.send(notification(user)),
        { concurrency: "unbounded", discard: true }
      )

      expect(sender.arrivals()).toHaveLength(40)
      expect(sender.connections()).toBe(4)
    }))

  it.scopedLive("treats any 2xx as success", () =>
    Effect.gen(function*() {
      const statuses = [200, 201, 202, 204, 299]
      const sender = yield* TestSender.start({ script: (arrival) => reply(statuses[arrival.index - 1]!) })
      const notifier = yield* webhook({ url: sender.url })

      for (const [i] of statuses.entries()) yield* notifier.send(notification(i + 1))

      expect(sender.arrivals().map((arrival) => arrival.status)).toStrictEqual(statuses)
    }))

  it.scopedLive("classifies 429 and 5xx as transient, other 4xx (and 3xx) as permanent", () =>
    Effect.gen(function*() {
      const cases = [
        [429, "Transient"],
        [500, "Transient"],
        [502, "Transient"],
        [503, "Transient"],
        [504, "Transient"],
        [400, "Permanent"],
        [401, "Permanent"],
        [404, "Permanent"],
        [410, "Permanent"],
        [422, "Permanent"],
        [301, "Permanent"]
      ] as const
      const sender = yield* TestSender.start({
        script: (arrival) => reply(cases[arrival.index - 1]![0], {}, `{"error":"case ${arrival.index}"}`)
      })
      const notifier = yield* webhook({ url: sender.url })

      for (const [i, [status, reason]] of cases.entries()) {
        const failure = yield* failureOf(notifier.send(notification(i + 1)))
        expect({ status, reason: failure.reason }).toStrictEqual({ status, reason })
        expect(failure.message).toContain(`HTTP ${status}`)
        expect(failure.message).toContain(`{"error":"case ${i + 1}"}`)
        expect(failure.retryAfter).toBeUndefined()
      }
    }))

  it.scopedLive("says what the sender answered, its reason phrase and a short part of its body", () =>
    Effect.gen(function*() {
      const sender = yield* TestSender.start({ script: () => reply(400, {}, `{"error":\n  "bad user"}` + " x".repeat(500)) })
      const notifier = yield* webhook({ url: sender.url })

      const failure = yield* failureOf(notifier.send(notification(1)))

      expect(failure.message.startsWith(`HTTP 400 Bad Request: {"error": "bad user"} x x`)).toBe(true)
      expect(failure.message.length).toBeLessThan(250)
    }))

  it.scopedLive("reads Retry-After in seconds on 429 and 503", () =>
    Effect.gen(function*() {
      const sender = yield* TestSender.start({
        script: (arrival) => arrival.index === 1 ? reply(429, { "retry-after": "7" }) : reply(503, { "retry-after": "120" })
      })
      const notifier = yield* webhook({ url: sender.url })

      const tooMany = yield* failureOf(notifier.send(notification(1)))
      const unavailable = yield* failureOf(notifier.send(notification(2)))

      expect(tooMany.reason).toBe("Transient")
      expect(tooMany.retryAfter).toStrictEqual(Duration.seconds(7))
      expect(tooMany.message).toBe("HTTP 429 Too Many Requests (retry after 7s)")
      expect(unavailable.retryAfter).toStrictEqual(Duration.seconds(120))
    }))

  it.scopedLive("reads a Retry-After date relative to the response's Date header", () =>
    Effect.gen(function*() {
      // Years in the past: only the difference between the two headers may count, not our clock.
      const sender = yield* TestSender.start({
        script: () =>
          reply(503, { "date": "Wed, 21 Oct 2015 07:28:00 GMT", "retry-after": "Wed, 21 Oct 2015 07:28:30 GMT" })
      })
      const notifier = yield* webhook({ url: sender.url })

      const failure = yield* failureOf(notifier.send(notification(1)))

      expect(failure.retryAfter).toStrictEqual(Duration.millis(30_000))
    }))

  it.scopedLive("ignores Retry-After on statuses that do not define it, and when it is unreadable", () =>
    Effect.gen(function*() {
      const sender = yield* TestSender.start({
        script: (arrival) => arrival.index === 1 ? reply(500, { "retry-after": "5" }) : reply(429, { "retry-after": "soon" })
      })
      const notifier = yield* webhook({ url: sender.url })

      const serverError = yield* failureOf(notifier.send(notification(1)))
      const unreadable = yield* failureOf(notifier.send(notification(2)))

      expect(serverError.retryAfter).toBeUndefined()
      expect(unreadable.reason).toBe("Transient")
      expect(unreadable.retryAfter).toBeUndefined()
    }))

  it.scopedLive("treats a refused connection as transient", () =>
    Effect.gen(function*() {
      const port = yield* freePort
      const notifier = yield* webhook({ url: `http://127.0.0.1:${port}/notify` })

      const failure = yield* failureOf(notifier.send(notification(1)))

      expect(failure.reason).toBe("Transient")
      expect(failure.message).toContain("ECONNREFUSED")
    }))

  it.scopedLive("treats a connection the sender drops without answering as transient", () =>
    Effect.gen(function*() {
      const server = yield* Effect.acquireRelease(
        Effect.async<Http.Server>((resume) => {
          const server = Http.createServer((request) => request.socket.destroy())
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) =>
          Effect.async<void>((resume) => {
            server.close(() => resume(Effect.void))
          })
      )
      const notifier = yield* webhook({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` })

      const failure = yield* failureOf(notifier.send(notification(1)))

      expect(failure.reason).toBe("Transient")
      expect(failure.message).toMatch(/^request to the sender failed: /)
    }))

  it.scopedLive("an interrupted send aborts its request and frees its socket for the next", () =>
    Effect.gen(function*() {
      const sender = yield* TestSender.start({
        script: TestSender.forRequest(1, TestSender.hang)
      })
      const notifier = yield* webhook({ url: sender.url, connections: 1 })

      const hung = yield* Effect.fork(notifier.send(notification(1)))
      yield* sender.awaitArrivals(1)
      yield* Fiber.interrupt(hung)
      // One socket only: the next send goes out only if the first one's was given up.
      yield* notifier.send(notification(2)).pipe(Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => "the socket was not freed" }))

      expect(sender.arrivals().map((arrival) => arrival.idempotencyKey)).toEqual(["7:3:1", "7:3:2"])
    }))

  it.scoped("times out through the Clock: no answer within 10 s is transient", () =>
    Effect.gen(function*() {
      const sender = yield* TestSender.start({ script: () => TestSender.hang })
      const notifier = yield* webhook({ url: sender.url })

      const fiber = yield* Effect.fork(failureOf(notifier.send(notification(1))))
      yield* sender.awaitArrivals(1)
      yield* TestClock.adjust("9999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      const failure = yield* Fiber.join(fiber)

      expect(failure.reason).toBe("Transient")
      expect(failure.message).toBe("no response from the sender within 10s")
    }))

  it.scoped("takes its timeout from the options", () =>
    Effect.gen(function*() {
      const sender = yield* TestSender.start({ script: () => TestSender.hang })
      const notifier = yield* webhook({ url: sender.url, timeout: "2 seconds" })

      const fiber = yield* Effect.fork(failureOf(notifier.send(notification(1))))
      yield* sender.awaitArrivals(1)
      yield* TestClock.adjust("2 seconds")
      const failure = yield* Fiber.join(fiber)

      expect(failure.message).toBe("no response from the sender within 2s")
    }))
})

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-11-25T10:00:00Z")

  it("reads delta-seconds", () => {
    expect(Webhook.parseRetryAfter("0", { now })).toStrictEqual(Option.some(Duration.seconds(0)))
    expect(Webhook.parseRetryAfter(" 15 ", { now })).toStrictEqual(Option.some(Duration.seconds(15)))
  })

  it("reads an HTTP date against our clock when the response has no Date", () => {
    expect(Webhook.parseRetryAfter("Wed, 25 Nov 2026 10:00:05 GMT", { now })).toStrictEqual(
      Option.some(Duration.millis(5000))
    )
    // The obsolete RFC 850 form is still a date senders may use.
    expect(Webhook.parseRetryAfter("Wednesday, 25-Nov-26 10:01:00 GMT", { now })).toStrictEqual(
      Option.some(Duration.millis(60_000))
    )
  })

  it("reads a date in the past as no wait", () => {
    expect(Webhook.parseRetryAfter("Wed, 25 Nov 2026 09:59:00 GMT", { now })).toStrictEqual(
      Option.some(Duration.millis(0))
    )
  })

  it("prefers the response's Date to our clock", () => {
    expect(
      Webhook.parseRetryAfter("Wed, 25 Nov 2026 10:00:05 GMT", { now, responseDate: "Wed, 25 Nov 2026 10:00:03 GMT" })
    ).toStrictEqual(Option.some(Duration.millis(2000)))
  })

  it("ignores what is neither", () => {
    for (const value of ["", "-1", "1.5", "soon", "2026-11-25T10:00:05", "Wed, 25 Nov 2026 10:00:05"]) {
      expect([value, Webhook.parseRetryAfter(value, { now })]).toStrictEqual([value, Option.none()])
    }
  })
})

/** A port nobody listens on: bound, then released. */
const freePort = Effect.async<number>((resume) => {
  const server = Http.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})
