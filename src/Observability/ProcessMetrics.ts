/**
 * The process's own figures (memory, CPU, event-loop delay), as Effect
 * metrics sampled when they are scraped rather than on a timer: a scrape
 * reads them fresh and nothing runs between scrapes but the event-loop
 * monitor, which Node samples natively.
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import { monitorEventLoopDelay } from "node:perf_hooks"

const residentMemory = Metric.gauge("process_resident_memory_bytes", {
  description: "Resident memory size in bytes"
})
const heapUsed = Metric.gauge("nodejs_heap_used_bytes", { description: "V8 heap in use, in bytes" })
const heapTotal = Metric.gauge("nodejs_heap_total_bytes", { description: "V8 heap allocated, in bytes" })
const externalMemory = Metric.gauge("nodejs_external_memory_bytes", {
  description: "Memory of C++ objects bound to JavaScript objects (buffers included), in bytes"
})
const cpuUser = Metric.counter("process_cpu_user_seconds_total", {
  description: "User CPU time spent, in seconds",
  incremental: true
})
const cpuSystem = Metric.counter("process_cpu_system_seconds_total", {
  description: "System CPU time spent, in seconds",
  incremental: true
})
const startTime = Metric.gauge("process_start_time_seconds", {
  description: "Start time of the process since the Unix epoch, in seconds"
})
const eventLoopLagMean = Metric.gauge("nodejs_eventloop_lag_mean_seconds", {
  description: "Mean event-loop delay since the previous scrape, in seconds"
})
const eventLoopLagP99 = Metric.gauge("nodejs_eventloop_lag_p99_seconds", {
  description: "99th percentile of the event-loop delay since the previous scrape, in seconds"
})
const eventLoopLagMax = Metric.gauge("nodejs_eventloop_lag_max_seconds", {
  description: "Largest event-loop delay since the previous scrape, in seconds"
})

// The CPU counters grow by what the process used since they were last
// brought up to date: module state, so two scrapers in one process (tests)
// never count the same time twice.
const cpuReported = { user: 0, system: 0 }
const processStart = (Date.now() - performance.now()) / 1000

export interface ProcessMetrics {
  /** Brings every process metric up to date. */
  readonly sample: Effect.Effect<void>
}

/** Starts the event-loop monitor for the scope's lifetime. */
export const make: Effect.Effect<ProcessMetrics, never, Scope.Scope> = Effect.gen(function*() {
  const eventLoop = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const histogram = monitorEventLoopDelay({ resolution: 10 })
      histogram.enable()
      return histogram
    }),
    (histogram) => Effect.sync(() => histogram.disable())
  )

  const sample = Effect.suspend(() => {
    const memory = process.memoryUsage()
    const cpu = process.cpuUsage()
    const user = cpu.user / 1e6
    const system = cpu.system / 1e6
    const userDelta = user - cpuReported.user
    const systemDelta = system - cpuReported.system
    cpuReported.user = user
    cpuReported.system = system
    // The delays are in nanoseconds; with no sample yet, the figures are meaningless.
    const lag = eventLoop.count > 0
      ? { mean: eventLoop.mean / 1e9, p99: eventLoop.percentile(99) / 1e9, max: eventLoop.max / 1e9 }
      : undefined
    eventLoop.reset()
    return Effect.all([
      Metric.set(residentMemory, memory.rss),
      Metric.set(heapUsed, memory.heapUsed),
      Metric.set(heapTotal, memory.heapTotal),
      Metric.set(externalMemory, memory.external),
      Metric.incrementBy(cpuUser, userDelta),
      Metric.incrementBy(cpuSystem, systemDelta),
      Metric.set(startTime, processStart),
      lag === undefined ? Effect.void : Effect.all([
        Metric.set(eventLoopLagMean, lag.mean),
        Metric.set(eventLoopLagP99, lag.p99),
        Metric.set(eventLoopLagMax, lag.max)
      ], { discard: true })
    ], { discard: true })
  })

  return { sample }
})
