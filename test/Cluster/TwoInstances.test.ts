/**
 * Two service processes behind one "load balancer" (this test), sharing one
 * MariaDB database and one Redis (SPEC §3.2, §3.7, §4): one global limit
 * measured at the sender, one dispatcher per product, and SSE listeners that
 * hear every instance.
 */
import { expect, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import type { EventSourceMessage } from "eventsource-parser"
import { loadavg } from "node:os"
import type { StreamClient } from "../support/Http.js"
import {
  checkLimit,
  countsByUser,
  describeLimitCheck,
  range,
  rateBar,
  rateOf,
  realTimeLimit,
  webhooksOf
} from "../support/Deliveries.js"
import * as TestSender from "../support/Sender.js"
import {
  adminToken,
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

class Cluster extends Context.Tag("test/Cluster/TwoInstances")<Cluster, {
  readonly a: ServiceProcess
  readonly b: ServiceProcess
  readonly sender: TestSender.TestSender
}>() {}

const cluster = Layer.scoped(
  Cluster,
  Effect.gen(function*() {
    const backing = yield* Backing
    const sender = yield* TestSender.start({ latency: { minMs: 10, maxMs: 30 } })
    // Compiled, as `npm start` and the image run them: this test measures their rate.
    const options = { ...backing, compiled: true, webhookUrl: sender.url, rateLimitPerSecond: limit }
    const [a, b] = yield* Effect.all([start({ name: "instance A", ...options }), start({ name: "instance B", ...options })], {
      concurrency: "unbounded"
    })
    return { a, b, sender }
  })
).pipe(Layer.provideMerge(layerBacking))

const log = (line: string) => Effect.sync(() => console.log(`[two instances] ${line}`))

/** The next event of `stream` with the given name (skipping others), within `seconds`. */
const nextEvent = (stream: StreamClient, name: string, seconds = 10) =>
  Effect.gen(function*() {
    while (true) {
      const [event] = yield* stream.take(1, `${seconds} seconds`)
      if (event!.event === name) return event!
    }
  })

interface RestockEvent {
  readonly id: number
  readonly productId: number
  readonly restockRound: number
}

const restockEvent = (event: EventSourceMessage): RestockEvent => {
  const data = JSON.parse(event.data) as { readonly productId: number; readonly restockRound: number }
  return { id: Number(event.id), productId: data.productId, restockRound: data.restockRound }
}

layer(cluster, { excludeTestServices: true, timeout: "3 minutes" })("two instances on one MariaDB and one Redis", (it) => {
  it.effect("two products dispatched on different instances share one limit at the sender", () =>
    Effect.gen(function*() {
      const { a, b, sender } = yield* Cluster
      const [onA, onB] = [201, 202]
      yield* seedProduct(a, onA, { stock: 10, subscribers: 1_000 })
      yield* seedProduct(b, onB, { stock: 10, subscribers: 1_000, firstUser: 10_001 })
      let best = 0
      // Attempt 0 is the fresh processes' first round, still compiling their send path (the
      // benches report such a round on its own; SPEC §3.2 asks for a sustained rate): it is
      // checked like the others, but its rate does not count. Then up to three rounds.
      for (let attempt = 0; attempt <= 3 && best < rateBar * limit; attempt++) {
        const cpuBefore = [a.cpuMillis(), b.cpuMillis()]
        sender.resetReceiverStall()
        const [roundA, roundB] = yield* Effect.all([trigger(a, onA), trigger(b, onB)], { concurrency: "unbounded" })
        const [doneA, doneB] = yield* Effect.all([
          awaitTerminal(a, onA, roundA.restockRound),
          awaitTerminal(b, onB, roundB.restockRound)
        ], { concurrency: "unbounded" })
        const stall = sender.receiverStallMs()
        expect(doneA).toMatchObject({ status: "COMPLETED", sentCount: 1_000 })
        expect(doneB).toMatchObject({ status: "COMPLETED", sentCount: 1_000 })
        const cpuMs = [a.cpuMillis(), b.cpuMillis()].map((after, i) =>
          after === undefined || cpuBefore[i] === undefined ? Number.NaN : after - cpuBefore[i]!)
        const fromA = webhooksOf(sender, onA, roundA.restockRound)
        const fromB = webhooksOf(sender, onB, roundB.restockRound)
        expect(countsByUser(fromA).size).toBe(1_000)
        expect(countsByUser(fromB).size).toBe(1_000)
        const combined = rateOf([...fromA, ...fromB])
        const limitCheck = checkLimit([...fromA, ...fromB], limit)
        // Sustained while both instances were sending.
        const from = Math.max(fromA[0]!.at, fromB[0]!.at)
        const to = Math.min(fromA.at(-1)!.at, fromB.at(-1)!.at)
        const whileBoth = rateOf([...fromA, ...fromB].filter((webhook) => webhook.at >= from && webhook.at <= to))
        yield* log(`combined: ${combined.arrivals} arrivals, ${describeLimitCheck(limitCheck)} (receiver stalled ${stall.toFixed(1)} ms), ` +
          `achieved ${combined.achieved.toFixed(1)}/s (${(combined.achieved / limit * 100).toFixed(1)} %); ` +
          `while both sent (${((to - from) / 1000).toFixed(2)} s): ${whileBoth.achieved.toFixed(1)}/s, ` +
          `worst ${whileBoth.worstSecond}; per instance ${rateOf(fromA).achieved.toFixed(0)}/s and ${rateOf(fromB).achieved.toFixed(0)}/s; ` +
          `CPU per send ${(cpuMs[0]! / 1_000).toFixed(2)} ms and ${(cpuMs[1]! / 1_000).toFixed(2)} ms; load ${loadavg()[0]!.toFixed(1)}`)
        // One limit for the whole cluster: never more than the limit in any sliding second, combined,
        // as started and as the receiver saw it.
        expect(limitCheck.startsWorst).toBeLessThanOrEqual(limit)
        expect(limitCheck.arrivalsWorst).toBeLessThanOrEqual(limit + limitCheck.allowance)
        // Both really ran at once, each at about half the limit.
        expect(to - from).toBeGreaterThan(2_000)
        if (attempt > 0) best = Math.max(best, combined.achieved)
      }
      // A shortfall with the CPU per send logged above near 1000 / limit ms means the process
      // cannot keep up on this machine (or was starved of CPU), not that the limiter spaces too widely.
      expect(best, "the best sustained rate of the attempts, at the sender (per second)").toBeGreaterThanOrEqual(rateBar * limit)
    }))

  it.effect("the same product triggered on both instances at once: one 202, one 409 RoundInProgress, one round", () =>
    Effect.gen(function*() {
      const { a, b, sender } = yield* Cluster
      const productId = 203
      yield* seedProduct(a, productId, { stock: 10, subscribers: 200 })
      const races = 5
      for (let race = 1; race <= races; race++) {
        const path = `/products/${productId}/notifications/re-stock`
        const [fromA, fromB] = yield* Effect.all([a.request("POST", path), b.request("POST", path)], {
          concurrency: "unbounded"
        })
        expect([fromA.status, fromB.status].sort()).toEqual([202, 409])
        const [winner, loser] = fromA.status === 202 ? [a, fromB] : [b, fromA]
        expect(loser.body).toMatchObject({ _tag: "RoundInProgress" })
        const opened = (fromA.status === 202 ? fromA : fromB).body as RoundJson
        expect(opened.restockRound).toBe(race)
        const done = yield* awaitTerminal(winner, productId, race)
        expect(done).toMatchObject({ status: "COMPLETED", sentCount: 200 })
        // Sent once, by one dispatcher.
        expect(webhooksOf(sender, productId, race).length).toBe(200)
      }
      const rounds = yield* a.request("GET", `/products/${productId}/notifications`)
      expect((rounds.body as Array<RoundJson>).map((round) => round.restockRound)).toEqual(range(1, races).reverse())
    }))

  it.scoped("an SSE listener on B hears a round sent by A; Last-Event-ID replays exactly across instances", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Cluster
      const listener = 9_001
      const [first, second, third] = [204, 205, 206]
      for (const productId of [first, second, third]) {
        yield* seedProduct(a, productId, { stock: 10, subscribers: 20 })
        // The listener subscribes through the API, behind the 20 others.
        const subscribed = yield* b.request("PUT", `/products/${productId}/subscriptions/${listener}`)
        expectStatus(b, "subscribing", subscribed, 200)
      }
      const minted = yield* a.request("POST", `/admin/users/${listener}/token`)
      const token = expectStatus(a, "minting a token", minted, 200).body.token as string

      const onB = yield* b.stream(`/users/${listener}/notifications/stream`, { token })
      expect(onB.status).toBe(200)
      // An operator watching B follows a round that A sends.
      const progressOnB = yield* b.stream(`/admin/products/${first}/notifications/stream`, { token: adminToken })
      expect(progressOnB.status).toBe(200)
      expect(JSON.parse((yield* nextEvent(progressOnB, "progress")).data)).toBeNull()

      const round1 = yield* trigger(a, first)
      const heard1 = restockEvent(yield* nextEvent(onB, "restock"))
      expect(heard1).toMatchObject({ productId: first, restockRound: round1.restockRound })
      let progress: RoundJson | null = null
      while (progress?.status !== "COMPLETED") progress = JSON.parse((yield* nextEvent(progressOnB, "progress")).data)
      expect(progress).toMatchObject({ restockRound: round1.restockRound, sentCount: 21, lastSentUserId: listener })

      const round2 = yield* trigger(a, second)
      const heard2 = restockEvent(yield* nextEvent(onB, "restock"))
      expect(heard2).toMatchObject({ productId: second, restockRound: round2.restockRound })
      // The event ids are the history rows' ids.
      const rowOf = (productId: number, round: number) =>
        Effect.map(historyOf(productId, round), (rows) => rows.find((row) => row.userId === listener)!.id)
      expect(heard1.id).toBe(yield* rowOf(first, round1.restockRound))
      expect(heard2.id).toBe(yield* rowOf(second, round2.restockRound))

      // Reconnecting to A after the first event: the second is replayed, then live ones follow.
      const onA = yield* a.stream(`/users/${listener}/notifications/stream`, {
        token,
        headers: { "last-event-id": String(heard1.id) }
      })
      expect(onA.status).toBe(200)
      expect(restockEvent(yield* nextEvent(onA, "restock"))).toEqual(heard2)
      const round3 = yield* trigger(b, third)
      const live3OnA = restockEvent(yield* nextEvent(onA, "restock"))
      const live3OnB = restockEvent(yield* nextEvent(onB, "restock"))
      expect(live3OnA).toMatchObject({ productId: third, restockRound: round3.restockRound })
      expect(live3OnB).toEqual(live3OnA)
      yield* awaitTerminal(b, third, round3.restockRound)
      // Nothing more, nothing twice.
      yield* Effect.sleep("500 millis")
      expect((yield* onA.drain).filter((event) => event.event === "restock")).toEqual([])
      expect((yield* onB.drain).filter((event) => event.event === "restock")).toEqual([])
    }))
})
