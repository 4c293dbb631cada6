/**
 * sse — fan-out to many listeners of one process.
 *
 * One service process (compiled, `dist/main.js`, as `npm start` runs it; `NOTIFIER=sse`, MariaDB + Redis),
 * 20,000 users subscribed to one product (fewer when the open-files limit
 * leaves one process less room), each with an SSE stream open on it, opened
 * 200 at a time from a process of their own (`support/SseClients.ts`), then
 * a round to all of them at the limit (500/s). Measured: opens per second
 * and the service's CPU per open, each event's delivery latency — its
 * `sentAt` (when the service started the send) to its receipt — the
 * service's CPU per delivered event, and its RSS idle, with the streams
 * open (per stream), and at its peak.
 */
import { Effect } from "effect"
import { readFileSync } from "node:fs"
import { SignJWT } from "jose"
import * as Service from "../test/support/Service.js"
import type { Bench } from "./support/Bench.js"
import * as Chart from "./support/Chart.js"
import { fixed, processMemory, quantile, table, target, thousands } from "./support/Measure.js"
import { say } from "./support/Say.js"
import * as SseClients from "./support/SseClients.js"

const targetListeners = 20_000
/** Connection attempts in flight while the streams open: a reconnect storm after a deploy. */
const openConcurrency = 200
const limit = 500

const userToken = (key: Uint8Array, userId: number) =>
  new SignJWT({})
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(String(userId))
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(key)

/**
 * The latency distribution as the share of events received within x ms
 * (an empirical CDF, thinned to ~500 steps), p50 and p99 marked.
 */
const latencyChart = (latencies: ReadonlyArray<number>, events: number): Chart.Chart => {
  const sorted = [...latencies].sort((a, b) => a - b)
  const every = Math.max(1, Math.floor(sorted.length / 500))
  // On a log scale; a latency under 1 ms (the two clocks are one machine's) is drawn at 1 ms.
  const points = sorted.flatMap((ms, i) =>
    i % every === 0 || i === sorted.length - 1 ? [{ ms: Math.max(1, ms), share: (i + 1) / sorted.length }] : []
  )
  const marks = [
    { label: `p50 ${fixed(quantile(latencies, 0.5), 1)} ms`, ms: quantile(latencies, 0.5) },
    { label: `p99 ${fixed(quantile(latencies, 0.99), 1)} ms`, ms: quantile(latencies, 0.99) }
  ]
  return {
    file: "sse-latency.svg",
    title: `SSE delivery latency of ${thousands(events)} events to ${thousands(listenersCount)} listeners`,
    spec: {
      ...Chart.base,
      title: {
        text: `SSE delivery latency: ${thousands(events)} events, ${thousands(listenersCount)} listeners, a round at ${limit}/s`,
        subtitle: ["Share of events received within x ms of their send's start (sentAt);", "x on a log scale."]
      },
      layer: [
        {
          data: { values: points },
          mark: { type: "line", interpolate: "step-after", strokeWidth: 1.5, color: "#1f77b4" },
          encoding: {
            x: { field: "ms", type: "quantitative", title: "latency, ms", scale: { type: "log" } },
            y: { field: "share", type: "quantitative", title: "share of events received", axis: { format: "%" } }
          }
        },
        {
          data: { values: marks },
          mark: { type: "rule", color: "#888", strokeDash: [4, 3] },
          encoding: { x: { field: "ms", type: "quantitative" } }
        },
        {
          data: { values: marks },
          mark: { type: "text", align: "left", dx: 4, y: 12, color: "#555" },
          encoding: { x: { field: "ms", type: "quantitative" }, text: { field: "label" } }
        }
      ]
    }
  }
}

/**
 * The most listeners one service process can hold here: 20,000 (the target),
 * or fewer when the open-files limit (which the service inherits) leaves less
 * room beside the service's other descriptors.
 */
const listenersCount = (() => {
  const limits = readFileSync("/proc/self/limits", "utf8").match(/^Max open files\s+(\d+)/m)
  const openFiles = limits === null ? Number.POSITIVE_INFINITY : Number(limits[1])
  return Math.min(targetListeners, openFiles - 200)
})()

export const run = Effect.gen(function*() {
  const backing = yield* Service.Backing
  const service = yield* Service.start({
    name: "sse-bench",
    compiled: true,
    ...backing,
    // Not used with NOTIFIER=sse, but the helper asks for one.
    webhookUrl: "http://127.0.0.1:9/unused",
    rateLimitPerSecond: limit,
    env: { NOTIFIER: "sse" }
  })
  const idle = processMemory(service.pid)
  yield* Service.seedProduct(service, 1, { stock: 1_000_000, subscribers: listenersCount })
  const clients = yield* SseClients.start

  say(`opening ${thousands(listenersCount)} SSE streams from a process of their own`)
  const key = new TextEncoder().encode(Service.jwtSecret)
  const users = Array.from({ length: listenersCount }, (_, i) => i + 1)
  const urls = yield* Effect.promise(() =>
    Promise.all(users.map(async (u) => `${service.baseUrl}/users/${u}/notifications/stream?access_token=${await userToken(key, u)}`))
  )
  const cpuBeforeOpen = service.cpuMillis() ?? Number.NaN
  const opened = yield* clients.open(urls, openConcurrency)
  const openCpuMs = (service.cpuMillis() ?? Number.NaN) - cpuBeforeOpen
  const open = opened.open
  // A moment for the opens' garbage to be collected, so the RSS is what the open streams hold.
  yield* Effect.sleep("3 seconds")
  const connected = processMemory(service.pid)

  say(`a round of ${thousands(listenersCount)} at ${limit}/s`)
  let peakRss = connected?.rssMiB ?? Number.NaN
  const sampler = setInterval(() => {
    const memory = processMemory(service.pid)
    if (memory !== undefined) peakRss = Math.max(peakRss, memory.rssMiB)
  }, 100)
  const cpuBefore = service.cpuMillis()
  const round = yield* Service.trigger(service, 1).pipe(
    Effect.flatMap((started) => Service.awaitTerminal(service, 1, started.restockRound, "120 seconds")),
    Effect.ensuring(Effect.sync(() => clearInterval(sampler)))
  )
  // Deliveries are published after their batch commits: give the last ones a moment to arrive.
  let report = yield* clients.report
  const deadline = Date.now() + 10_000
  while (report.withEvent + report.ended < open && Date.now() < deadline) {
    yield* Effect.sleep("100 millis")
    report = yield* clients.report
  }
  const cpuMs = (service.cpuMillis() ?? Number.NaN) - (cpuBefore ?? Number.NaN)
  const after = processMemory(service.pid)

  const latencies = report.latencies
  const receivedBy = report.withEvent
  const duplicates = report.moreThanOnce
  const dropped = report.ended
  const p50 = quantile(latencies, 0.5)
  const p99 = quantile(latencies, 0.99)
  const perStreamKiB = (((connected?.rssMiB ?? Number.NaN) - (idle?.rssMiB ?? Number.NaN)) * 1024) / Math.max(1, open)
  const opensPerSecond = open / opened.seconds
  const cpuPerEvent = cpuMs / Math.max(1, latencies.length)

  return {
    charts: [latencyChart(latencies, latencies.length)],
    sections: [
      table(
        ["listeners open", "opens/s", "service CPU ms/open", "received the event", "more than one", "streams ended by the server", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        [[
          `${thousands(open)} of ${thousands(listenersCount)} (in ${fixed(opened.seconds, 1)} s)`,
          thousands(opensPerSecond),
          fixed(openCpuMs / Math.max(1, open), 3),
          thousands(receivedBy),
          thousands(duplicates),
          thousands(dropped),
          fixed(p50, 1),
          fixed(quantile(latencies, 0.9), 1),
          fixed(p99, 1),
          fixed(Math.max(...latencies), 1)
        ]]
      ),
      table(
        ["service RSS", "MiB"],
        [
          ["idle (started, no streams)", fixed(idle?.rssMiB ?? Number.NaN, 1)],
          [`${thousands(open)} streams open`, fixed(connected?.rssMiB ?? Number.NaN, 1)],
          ["per open stream (KiB)", fixed(perStreamKiB, 1)],
          ["peak during the round (sampled every 100 ms)", fixed(peakRss, 1)],
          ["after the round", fixed(after?.rssMiB ?? Number.NaN, 1)],
          ["kernel high-water mark (VmHWM)", fixed(after?.peakMiB ?? Number.NaN, 1)]
        ]
      ),
      `${thousands(listenersCount)} listeners: ${
        listenersCount < targetListeners
          ? `the most this machine's open-files limit leaves one process (${thousands(targetListeners)} asked)`
          : "as asked"
      }; opened ${openConcurrency} at a time from a process of their own, over 8 source addresses. ` +
      `Round ${round.status}, ${thousands(round.sentCount)} sent; the service used ${fixed(cpuMs, 0)} ms CPU for it ` +
      `(${fixed(cpuPerEvent, 3)} ms per delivered event, the dispatch included: with NOTIFIER=sse a send is its publish). ` +
      "Latency = receipt − the event's sentAt (the moment the service started the send; events are published once " +
      "their delivery batch is committed)."
    ],
    targets: [
      target("sse: every listener received its notification exactly once",
        receivedBy === listenersCount && duplicates === 0 && round.status === "COMPLETED",
        `${thousands(receivedBy)} of ${thousands(listenersCount)}, ${duplicates} duplicated, round ${round.status}`),
      target("sse: ≤ 40 KiB RSS per open stream", perStreamKiB <= 40, `${fixed(perStreamKiB, 1)} KiB`),
      target("sse: ≤ 0.3 ms service CPU per delivered event", cpuPerEvent <= 0.3, `${fixed(cpuPerEvent, 3)} ms`),
      target("sse: p99 send → receipt ≤ 100 ms", p99 <= 100, `${fixed(p99, 1)} ms`),
      target("sse: ≥ 2,000 stream opens per second", opensPerSecond >= 2_000, `${thousands(opensPerSecond)}/s`)
    ]
  }
}).pipe(Effect.provide(Service.layerBacking))

export const bench: Bench = {
  name: "sse",
  title: "SSE fan-out: 20,000 listeners on one process (as many as the open-files limit allows), a round to all of them at 500/s",
  timeout: "6 minutes",
  run
}
