/**
 * sse — fan-out to many listeners of one process.
 *
 * One service process (compiled, `dist/main.js`, as `npm start` runs it; `NOTIFIER=sse`, MariaDB + Redis),
 * 2,000 users subscribed to one product, each with an SSE stream open on it
 * (2,000 sockets from this process), then a round of those 2,000 at the
 * limit (500/s). Measured: each event's delivery latency — its `sentAt`
 * (when the service started the send) to its receipt here — and the
 * service's RSS idle, with the streams open, and at its peak.
 */
import { Effect } from "effect"
import { SignJWT } from "jose"
import * as Service from "../test/support/Service.js"
import type { Bench } from "./support/Bench.js"
import * as Chart from "./support/Chart.js"
import { fixed, now, processMemory, quantile, table, target, thousands } from "./support/Measure.js"
import { say } from "./support/Say.js"
import { openListeners } from "./support/SseClients.js"

const listenersCount = 2_000
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

  say(`opening ${thousands(listenersCount)} SSE streams`)
  const key = new TextEncoder().encode(Service.jwtSecret)
  const users = Array.from({ length: listenersCount }, (_, i) => i + 1)
  const tokens = new Map(yield* Effect.promise(() => Promise.all(users.map(async (u) => [u, await userToken(key, u)] as const))))
  const openStarted = now()
  const listeners = yield* openListeners(service.baseUrl, users, (u) => `/users/${u}/notifications/stream?access_token=${tokens.get(u)}`)
  const openSeconds = (now() - openStarted) / 1000
  const open = listeners.filter((l) => l.opened !== undefined && l.status === 200).length
  const connected = processMemory(service.pid)

  say(`a round of ${thousands(listenersCount)} at ${limit}/s`)
  let peakRss = connected?.rssMiB ?? Number.NaN
  const sampler = setInterval(() => {
    const memory = processMemory(service.pid)
    if (memory !== undefined) peakRss = Math.max(peakRss, memory.rssMiB)
  }, 100)
  const cpuBefore = service.cpuMillis()
  const round = yield* Service.trigger(service, 1).pipe(
    Effect.flatMap((opened) => Service.awaitTerminal(service, 1, opened.restockRound, "60 seconds")),
    Effect.ensuring(Effect.sync(() => clearInterval(sampler)))
  )
  // Deliveries are published after their batch commits: give the last ones a moment to arrive.
  const deadline = Date.now() + 10_000
  while (listeners.some((l) => l.events.length === 0 && l.ended === undefined) && Date.now() < deadline) {
    yield* Effect.sleep("50 millis")
  }
  const cpuMs = (service.cpuMillis() ?? Number.NaN) - (cpuBefore ?? Number.NaN)
  const after = processMemory(service.pid)

  const received = listeners.flatMap((l) => l.events)
  const latencies = received.map((e) => e.at - e.sentAt)
  const receivedBy = listeners.filter((l) => l.events.length > 0).length
  const duplicates = listeners.filter((l) => l.events.length > 1).length
  const dropped = listeners.filter((l) => l.ended !== undefined).length
  const p50 = quantile(latencies, 0.5)
  const p99 = quantile(latencies, 0.99)

  return {
    charts: [latencyChart(latencies, received.length)],
    sections: [
      table(
        ["listeners open", "received the event", "more than one", "streams ended by the server", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        [[
          `${thousands(open)} (in ${fixed(openSeconds, 1)} s)`,
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
          ["per open stream (KiB)", fixed((((connected?.rssMiB ?? Number.NaN) - (idle?.rssMiB ?? Number.NaN)) * 1024) / Math.max(1, open), 0)],
          ["peak during the round (sampled every 100 ms)", fixed(peakRss, 1)],
          ["after the round", fixed(after?.rssMiB ?? Number.NaN, 1)],
          ["kernel high-water mark (VmHWM)", fixed(after?.peakMiB ?? Number.NaN, 1)]
        ]
      ),
      `Round ${round.status}, ${thousands(round.sentCount)} sent; the service used ${fixed(cpuMs, 0)} ms CPU for it ` +
      `(${fixed(cpuMs / Math.max(1, round.sentCount), 2)} ms per notification). Latency = receipt here − the event's sentAt ` +
      "(the moment the service started the send; events are published once their delivery batch is committed)."
    ],
    targets: [
      target("sse: every listener received its notification exactly once",
        receivedBy === listenersCount && duplicates === 0 && round.status === "COMPLETED",
        `${thousands(receivedBy)} of ${thousands(listenersCount)}, ${duplicates} duplicated, round ${round.status}`)
    ]
  }
}).pipe(Effect.provide(Service.layerBacking))

export const bench: Bench = {
  name: "sse",
  title: "SSE fan-out: 2,000 listeners on one process, a 2,000-user round at 500/s",
  timeout: "3 minutes",
  run
}
