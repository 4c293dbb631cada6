/**
 * memory — a round's memory must not grow with its number of subscribers.
 *
 * Two rounds, 20,000 and 200,000 subscribers (seeded with multi-row INSERTs),
 * each sent by a fresh process of its own (`memory-child.ts`: the service on
 * MariaDB and Redis, instant notifier, 5,000/s) so that the RSS of one
 * is not the other's. Compared: the peak RSS while sending (sampled every
 * 20 ms), the kernel's high-water mark, and the peak heap.
 */
import { Effect, Schema } from "effect"
import * as Database from "../src/Repo/Database.js"
import type { Bench } from "./support/Bench.js"
import * as Chart from "./support/Chart.js"
import { runScript } from "./support/Child.js"
import * as Infra from "./support/Infra.js"
import { fixed, table, target, thousands } from "./support/Measure.js"
import { say } from "./support/Say.js"
import { seedProduct } from "./support/Seed.js"

const sizes = [20_000, 200_000]
/**
 * Both rounds paced, at ten times the default limit: long enough (4 s and
 * 44 s) for V8 to have sized its heap to the work in each, so that the two
 * differ in their count only; and in batches of every size, as a service
 * records them. With the limit lifted the 20,000 round lasted 1.5 s and
 * peaked at 295 or 360 MiB depending on whether V8 had grown its heap yet
 * (ratios 1.03–1.34 against a steady ~395), and its batches were always
 * large, which hid a prepared statement kept per batch size.
 */
const limitPerSecond = 5_000

const ChildReport = Schema.parseJson(Schema.Struct({
  status: Schema.String,
  sentCount: Schema.Number,
  seconds: Schema.Number,
  readyRssMiB: Schema.Number,
  readyHeapMiB: Schema.Number,
  peakRssMiB: Schema.Number,
  peakHeapMiB: Schema.Number,
  maxLiveHeapMiB: Schema.NullOr(Schema.Number),
  liveHeapMiB: Schema.Array(Schema.Number),
  maxRssMiB: Schema.Number,
  /** [seconds since the round began, RSS MiB, heap used MiB], every 100 ms. */
  curve: Schema.Array(Schema.Tuple(Schema.Number, Schema.Number, Schema.Number))
}))

const oneRound = (subscribers: number) =>
  Effect.gen(function*() {
    const db = yield* Infra.database
    const redis = yield* Infra.redis("memory")
    say(`seeding ${thousands(subscribers)} subscribers`)
    yield* seedProduct({ productId: 1, subscribers }).pipe(Effect.provide(Database.layer(db.config)))
    say(`a round of ${thousands(subscribers)} in a fresh process`)
    const { stdout } = yield* runScript("bench/memory-child.ts", {
      env: {
        BENCH_DATABASE_URL: db.url,
        BENCH_REDIS_URL: redis.url,
        BENCH_REDIS_PREFIX: redis.prefix,
        BENCH_PRODUCT_ID: "1",
        BENCH_LIMIT_PER_SECOND: String(limitPerSecond)
      },
      nodeArguments: ["--expose-gc"],
      timeout: "6 minutes"
    })
    const lastLine = stdout.trim().split("\n").pop() ?? ""

    return { subscribers, ...(yield* Schema.decodeUnknown(ChildReport)(lastLine)) }
  }).pipe(Effect.scoped)

/** RSS and heap over each round's time, the two rounds side by side. */
const memoryChart = (
  rounds: ReadonlyArray<{ readonly subscribers: number; readonly curve: ReadonlyArray<readonly [number, number, number]> }>
): Chart.Chart => ({
  file: "memory.svg",
  title: "Memory of a round of 20,000 and of 200,000 subscribers over its time",
  spec: {
    ...Chart.base,
    title: {
      text: `Memory over a round: ${rounds.map((r) => thousands(r.subscribers)).join(" vs ")} subscribers at ${thousands(limitPerSecond)}/s`,
      subtitle: ["Each round in a fresh process, sampled every 100 ms from the trigger:", "resident set size (solid) and V8 heap used (dashed)."]
    },
    data: {
      values: rounds.flatMap((r) =>
        r.curve.flatMap(([seconds, rss, heap]) => [
          { round: `${thousands(r.subscribers)} subscribers`, measure: "RSS", seconds, mib: rss },
          { round: `${thousands(r.subscribers)} subscribers`, measure: "heap used", seconds, mib: heap }
        ])
      )
    },
    mark: { type: "line", strokeWidth: 1.5 },
    encoding: {
      x: { field: "seconds", type: "quantitative", title: "seconds since the round was triggered" },
      y: { field: "mib", type: "quantitative", title: "MiB" },
      color: { field: "round", type: "nominal", title: null, sort: null },
      strokeDash: { field: "measure", type: "nominal", title: null, sort: ["RSS", "heap used"] },
      detail: { field: "measure" }
    }
  }
})

export const run = Effect.gen(function*() {
  const rounds = yield* Effect.forEach(sizes, oneRound)
  const [small, large] = rounds as unknown as readonly [typeof rounds[0], typeof rounds[0]]
  const ratio = large.peakRssMiB / small.peakRssMiB
  const growth = (r: typeof small) => r.peakRssMiB - r.readyRssMiB
  return {
    charts: [memoryChart(rounds)],
    sections: [
      table(
        ["subscribers", "status", "sent", "seconds", "msg/s", "RSS ready MiB", "peak RSS MiB", "kernel maxRSS MiB", "peak heap MiB", "live heap MiB (max after GC)", "RSS growth MiB"],
        rounds.map((r) => [
          thousands(r.subscribers),
          r.status,
          thousands(r.sentCount),
          fixed(r.seconds, 1),
          thousands(r.sentCount / r.seconds),
          fixed(r.readyRssMiB, 1),
          fixed(r.peakRssMiB, 1),
          fixed(r.maxRssMiB, 1),
          fixed(r.peakHeapMiB, 1),
          r.maxLiveHeapMiB === null ? "" : fixed(r.maxLiveHeapMiB, 1),
          fixed(growth(r), 1)
        ])
      ),
      `Peak RSS ratio 200,000 / 20,000 = ${fixed(ratio, 3)} for 10× the subscribers ` +
      `(RSS growth during the round: ${fixed(growth(small), 1)} MiB vs ${fixed(growth(large), 1)} MiB).`,
      `Live heap after a full GC, once a second through each round (MiB): ` +
      rounds.map((r) => `${thousands(r.subscribers)}: ${r.liveHeapMiB.map((v) => fixed(v, 0)).join(" ")}`).join("; ") + "."
    ],
    targets: [
      target("memory: both rounds COMPLETED", rounds.every((r) => r.status === "COMPLETED" && r.sentCount === r.subscribers),
        rounds.map((r) => `${r.status} ${thousands(r.sentCount)}`).join(", ")),
      // 10× the subscribers; anything that held per-subscriber state would show up as a large multiple.
      target("memory: peak RSS does not grow with the count (ratio ≤ 1.25)", ratio <= 1.25, fixed(ratio, 3))
    ]
  }
})

export const bench: Bench = {
  name: "memory",
  title: "Peak RSS of a round of 20,000 vs 200,000 subscribers at 5,000/s (fresh process each)",
  timeout: "10 minutes",
  run
}
