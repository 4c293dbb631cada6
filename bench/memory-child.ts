/**
 * One round in a process of its own, for the memory bench: builds the
 * service on the database and Redis prefix it is given (instant notifier,
 * in-process limiter at `BENCH_LIMIT_PER_SECOND`), notes its resident set size once ready, sends the round of
 * product `BENCH_PRODUCT_ID` while sampling RSS and heap every 20 ms, and
 * prints one JSON line with what it saw (and the curve, every 100 ms).
 *
 * Started by `bench/memory.ts` (not meant to be run by hand).
 */
import { Effect, Logger, LogLevel, Redacted } from "effect"
import { performance } from "node:perf_hooks"
import type { DatabaseConfig } from "../src/Config.js"
import * as Redis from "../src/Redis.js"
import { timedRound } from "./support/Round.js"
import { instantNotifier, stack } from "./support/Stack.js"

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined || value === "") throw new Error(`memory-child needs ${name}`)
  return value
}

const database: DatabaseConfig = { _tag: "Mysql", url: Redacted.make(new URL(env("BENCH_DATABASE_URL"))) }
const redis = Redis.layer(Redacted.make(new URL(env("BENCH_REDIS_URL"))), { keyPrefix: env("BENCH_REDIS_PREFIX") })
const productId = Number(env("BENCH_PRODUCT_ID"))

const mib = (bytes: number) => bytes / 1024 / 1024

const main = Effect.gen(function*() {
  // Let start-up garbage go first, so that "ready" is what a running service holds.
  globalThis.gc?.()
  const ready = process.memoryUsage()
  let peakRss = ready.rss
  let peakHeap = ready.heapUsed
  // The live heap: what a full collection leaves, once a second. It grows with the subscribers
  // only if something is kept per subscriber; the peaks above also hold garbage not yet collected.
  const liveHeap: Array<number> = []
  // The curve for the chart: [seconds since the round began, RSS MiB, heap used MiB], every 100 ms.
  const curve: Array<readonly [number, number, number]> = [[0, mib(ready.rss), mib(ready.heapUsed)]]
  const began = performance.now()
  let ticks = 0
  const sampler = setInterval(() => {
    const now = process.memoryUsage()
    peakRss = Math.max(peakRss, now.rss)
    peakHeap = Math.max(peakHeap, now.heapUsed)
    if (ticks % 5 === 4) curve.push([(performance.now() - began) / 1000, mib(now.rss), mib(now.heapUsed)])
    if (++ticks % 50 === 0 && globalThis.gc !== undefined) {
      globalThis.gc()
      liveHeap.push(mib(process.memoryUsage().heapUsed))
    }
  }, 20)
  const timed = yield* timedRound(productId).pipe(Effect.ensuring(Effect.sync(() => clearInterval(sampler))))
  const result = {
    status: timed.round.status,
    sentCount: timed.round.sentCount,
    seconds: timed.seconds,
    readyRssMiB: mib(ready.rss),
    readyHeapMiB: mib(ready.heapUsed),
    peakRssMiB: mib(peakRss),
    peakHeapMiB: mib(peakHeap),
    maxLiveHeapMiB: liveHeap.length === 0 ? null : Math.max(...liveHeap),
    liveHeapMiB: liveHeap,
    curve,
    // The kernel's own high-water mark of the whole process' life (start-up included).
    maxRssMiB: process.resourceUsage().maxRSS / 1024
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
}).pipe(
  Effect.provide(stack({
    database,
    redis,
    notifier: instantNotifier,
    limitPerSecond: Number(env("BENCH_LIMIT_PER_SECOND")),
    limiter: "memory"
  }))
)

Effect.runPromise(main.pipe(Logger.withMinimumLogLevel(LogLevel.Warning))).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
