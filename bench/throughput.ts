/**
 * throughput — what the dispatch costs with the limit out of the way.
 *
 * The limit lifted to 1,000,000/s, an instant in-process sender, MariaDB
 * records: 20,000 subscribers from trigger to terminal status (every history
 * row committed), against, in the same run, the per-row shape: 50 concurrent
 * workers each sending then inserting one history row per message.
 *
 * Then where the time goes: probes on the ports time every page read, record
 * transaction, limiter acquire and send; a second round runs with the
 * in-process limiter (what the Redis round trip costs) under V8's sampling
 * profiler (where the CPU goes); and each port is timed alone, for the same
 * 20,000 messages, with nothing else running in the process.
 */
import { SqlClient } from "@effect/sql"
import { Effect, Stream } from "effect"
import { RateLimiter } from "../src/Dispatch/RateLimiter/RateLimiter.js"
import type { DeliveryRecord } from "../src/Domain/Delivery.js"
import { ProductId, UserId } from "../src/Domain/Ids.js"
import * as Database from "../src/Repo/Database.js"
import { Repo } from "../src/Repo/Repo.js"
import type { Bench } from "./support/Bench.js"
import { sendThenInsert } from "./support/Baseline.js"
import { type Bucket, profiled } from "./support/CpuProfile.js"
import { engineAlone, primitives } from "./support/EngineAlone.js"
import * as Infra from "./support/Infra.js"
import { fixed, now, table, target, thousands } from "./support/Measure.js"
import { timedRound } from "./support/Round.js"
import { say } from "./support/Say.js"
import { seedProduct } from "./support/Seed.js"
import { instantNotifier, Probe, stack, type Timer } from "./support/Stack.js"

const messages = 20_000
const workers = 50
const lifted = 1_000_000
/** Enough for a stable per-message figure; the engine alone runs it twice (warm-up, then measured). */
const engineMessages = 5_000
/** The dispatch's defaults: pages of 500, record batches of at most 500. */
const pageSize = 500
const recordBatch = 500

const countRecords = (productId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly n: number }>`SELECT COUNT(*) AS n FROM product_user_notification_history WHERE product_id = ${productId}`
  ).pipe(Effect.map((rows) => Number(rows[0]?.n ?? 0)), Effect.orDie)

interface Cost {
  readonly ms: number
  readonly cpuMs: number
}

const cost = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<Cost, E, R> =>
  Effect.suspend(() => {
    const started = now()
    const cpu = process.cpuUsage()
    return Effect.map(effect, () => {
      const used = process.cpuUsage(cpu)
      return { ms: now() - started, cpuMs: (used.user + used.system) / 1000 }
    })
  })

/** Each port alone, for `messages` messages, one call after another, nothing else running in this process. */
const isolatedCosts = (productId: number) =>
  Effect.gen(function*() {
    const repo = yield* Repo
    const limiter = yield* RateLimiter
    yield* seedProduct({ productId, subscribers: messages })
    const id = ProductId.make(productId)
    const owner = "bench-isolated"
    const opened = yield* repo.openRound(id, { owner, expiresAt: new Date(Date.now() + 600_000) }, new Date())

    const pages = yield* cost(Stream.runDrain(repo.pendingSubscribers(id, { restockRound: opened.restockRound, after: null, pageSize })))
    const records = yield* cost(Effect.gen(function*() {
      let round = opened
      for (let first = 1; first <= messages; first += recordBatch) {
        const deliveries: Array<DeliveryRecord> = Array.from(
          { length: Math.min(recordBatch, messages - first + 1) },
          (_, i) => ({ userId: UserId.make(first + i), sentAt: new Date() })
        )
        round = (yield* repo.recordDeliveries(round, owner, {
          deliveries,
          lastSentUserId: deliveries[deliveries.length - 1]!.userId,
          now: new Date(),
          productName: "Bench"
        })).round
      }
    }))
    const acquires = yield* cost(Effect.repeatN(limiter.acquire, messages - 1))
    yield* repo.finishRound(id, opened.restockRound, owner, { status: "COMPLETED", error: null, now: new Date() })
    return { pages, records, acquires }
  })

export const run = Effect.gen(function*() {
  const db = yield* Infra.database
  const redis = yield* Infra.redis("throughput")
  const stackWith = (limiter: "redis" | "memory", probe?: Probe) =>
    stack({ database: db.config, redis: redis.layer, notifier: instantNotifier, limitPerSecond: lifted, limiter, probe })

  /** Seeds `productId` and sends its round; with `profile`, under the CPU profiler. */
  const restockRound = (productId: number, limiter: "redis" | "memory", profile: boolean) =>
    Effect.gen(function*() {
      const probe = new Probe()
      return yield* Effect.gen(function*() {
        yield* seedProduct({ productId, subscribers: messages })
        const { buckets, result } = profile
          ? yield* profiled(timedRound(productId))
          : { result: yield* timedRound(productId), buckets: [] as ReadonlyArray<Bucket> }
        const records = yield* countRecords(productId)
        return { ...result, buckets, records, probe, perSecond: result.round.sentCount / result.seconds }
      }).pipe(Effect.provide(stackWith(limiter, probe)))
    })

  // The schema first: the baseline writes history rows of product 3 only.
  yield* Effect.provide(Effect.void, Database.layer(db.config))
  say(`baseline: ${thousands(messages)} messages, ${workers} workers, send then insert one row each`)
  const baseline = yield* sendThenInsert({ databaseUrl: db.url, messages, workers, productId: 3 })

  say(`restock: a round of ${thousands(messages)} subscribers, limit ${thousands(lifted)}/s, Redis limiter`)
  const withRedis = yield* restockRound(1, "redis", false)
  say("restock: the same with the in-process limiter, under the CPU profiler")
  const withMemory = yield* restockRound(2, "memory", true)
  say("each port alone for the same number of messages")
  const alone = yield* isolatedCosts(4).pipe(Effect.provide(stackWith("redis")))
  say("the engine alone over in-memory ports, and the Effect primitives it uses per message")
  const engineMicros = yield* engineAlone(engineMessages)
  const primitiveCosts = yield* primitives(5_000)

  const ratio = withRedis.perSecond / baseline.perSecond
  const row = (approach: string, count: number, seconds: number, cpuMs: number, records: number) => [
    approach,
    thousands(count),
    fixed(seconds, 2),
    thousands(count / seconds),
    fixed(count / seconds / baseline.perSecond, 2),
    fixed(cpuMs / count, 3),
    thousands(records)
  ]
  const stage = (name: string, timer: Timer, roundSeconds: number) => [
    name,
    thousands(timer.count),
    fixed(timer.items / Math.max(1, timer.count), 1),
    fixed(timer.totalMs, 0),
    fixed(timer.totalMs / Math.max(1, timer.count), 3),
    fixed(timer.maxMs, 1),
    `${fixed((100 * timer.totalMs) / (roundSeconds * 1000), 0)} %`
  ]
  const stages = (r: typeof withRedis) => [
    stage("page reads (pulls of pendingSubscribers)", r.probe.pages, r.seconds),
    stage("record transactions (recordDeliveries)", r.probe.records, r.seconds),
    stage("limiter acquires", r.probe.acquires, r.seconds),
    stage("sends (instant notifier)", r.probe.sends, r.seconds)
  ]
  const aloneRow = (name: string, c: Cost) => [name, fixed(c.ms, 0), fixed(c.cpuMs, 0), fixed((c.ms * 1000) / messages, 1)]
  const roundCpu = withMemory.cpuMs

  return {
    sections: [
      table(
        ["approach", "messages", "seconds", "msg/s", "× baseline", "CPU ms/msg (this process)", "history rows"],
        [
          row(`baseline: ${workers} workers, send then insert per message`, baseline.messages, baseline.seconds, baseline.cpuMs, baseline.messages),
          row("restock round, Redis limiter (as deployed)", withRedis.round.sentCount, withRedis.seconds, withRedis.cpuMs, withRedis.records),
          row("restock round, in-process limiter (profiled)", withMemory.round.sentCount, withMemory.seconds, withMemory.cpuMs, withMemory.records)
        ]
      ),
      "Where the round's wall time goes (probes on the ports; records overlap the start loop, the rest is on it):\n\n" +
      table(
        ["stage", "calls", "items/call", "total ms", "mean ms", "max ms", "of round"],
        [
          ["**Redis limiter round**", "", "", "", "", "", ""],
          ...stages(withRedis),
          ["**in-process limiter round**", "", "", "", "", "", ""],
          ...stages(withMemory)
        ]
      ),
      `Each port alone, ${thousands(messages)} messages, calls one after another:\n\n` +
      table(
        ["port alone", "wall ms", "CPU ms", "µs/msg"],
        [
          aloneRow(`page reads (${messages / pageSize} pages of ${pageSize})`, alone.pages),
          aloneRow(`record transactions (${messages / recordBatch} of ${recordBatch} rows)`, alone.records),
          aloneRow(`Redis limiter acquires (${thousands(messages)}, limit lifted)`, alone.acquires)
        ]
      ),
      `The engine alone (the real dispatchRound over in-memory ports that answer at once, limit lifted): ` +
      `${fixed(engineMicros, 0)} µs CPU per message, i.e. at most ${thousands(1_000_000 / engineMicros)} msg/s on one whole core ` +
      `before any database, Redis or sender work. What its per-message building blocks cost here:\n\n` +
      table(["Effect primitive (5,000 elements)", "CPU µs/element"], primitiveCosts.map(([name, micros]) => [name, fixed(micros, 1)])),
      `Where this process' CPU went during the in-process-limiter round (${fixed(roundCpu, 0)} ms CPU, ` +
      `${fixed(roundCpu / withMemory.round.sentCount, 3)} ms/msg; V8 sampling profiler, self time):\n\n` +
      table(
        ["bucket", "CPU ms", "share"],
        withMemory.buckets.filter((b) => b.share >= 0.005).map((b) => [b.name, fixed(b.ms, 0), `${fixed(100 * b.share, 1)} %`])
      )
    ],
    targets: [
      target("throughput: every history row written", withRedis.records === messages && withRedis.round.status === "COMPLETED",
        `${withRedis.round.status}, ${thousands(withRedis.records)} rows`),
      target("throughput: ≥ 10,000 msg/s with records", withRedis.perSecond >= 10_000, `${thousands(withRedis.perSecond)} msg/s`),
      target("throughput: well past 5× the per-row shape", ratio >= 5, `${fixed(ratio, 2)}×`)
    ]
  }
})

export const bench: Bench = {
  name: "throughput",
  title: "Limit lifted, instant sender, MariaDB records: restock vs send-then-insert",
  timeout: "5 minutes",
  run
}
