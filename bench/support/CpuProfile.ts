/**
 * Where this process' CPU goes while an effect runs: V8's sampling profiler
 * (through the inspector, in-process), its self time summed into buckets a
 * reader can act on — Effect's fiber runtime, its Stream machinery, Schema
 * decoding and validation, the garbage collector, the database and Redis
 * clients, restock's own modules.
 */
import { Effect } from "effect"
import { writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string }
}

interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

export interface Bucket {
  readonly name: string
  readonly ms: number
  readonly share: number
}

const profilerItself = "the profiler itself"

const effectModule = (url: string): string | undefined => /node_modules\/effect\/dist\/esm\/(.+)\.js$/.exec(url)?.[1]

/** The bucket of one sampled function. */
const bucketOf = ({ functionName, url }: ProfileNode["callFrame"]): string => {
  const effect = effectModule(url)
  if (effect !== undefined) {
    if (/^internal\/(channel|stream|sink)/.test(effect) || effect === "Stream" || effect === "Channel") {
      return "effect: Stream / Channel"
    }
    if (/^(ParseResult|Schema|SchemaAST)$/.test(effect) || effect.startsWith("internal/schema")) {
      return "effect: Schema (row decoding, class validation)"
    }
    if (/^internal\/(fiberRuntime|core|core-effect|fiberRefs|fiberScope|runtime)/.test(effect) || effect === "Scheduler") {
      return "effect: fiber runtime (fork, run loop, FiberRefs, scheduler)"
    }
    if (/^internal\/metric/.test(effect)) return "effect: Metric"
    return "effect: data structures and the rest"
  }
  const library = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1]
  if (library !== undefined) {
    if (library.startsWith("@effect/sql")) return "@effect/sql + mysql2"
    return library === "mysql2" ? "@effect/sql + mysql2" : library
  }
  if (url.includes("/src/")) return `restock src/${url.split("/src/")[1]}`
  if (url.includes("/bench/") || url.includes("/test/support/")) return "bench harness"
  if (functionName === "(garbage collector)") return "garbage collector"
  if (functionName === "(idle)") return "idle (waiting on I/O)"
  if (functionName === "(program)") return "V8 / native (program)"
  if (url.startsWith("node:")) return "Node internals (net, streams, timers)"
  // The inspector session's own calls (starting and stopping the profiler).
  if (functionName === "dispatch") return profilerItself
  // Builtins without a script: socket writes (writeBuffer, writev, writeUtf8String) and the like.
  return `native ${functionName || "(anonymous)"}`
}

/**
 * Runs `effect` under the sampling profiler; answers its result and the CPU
 * buckets, largest first (the profiler's own time left out).
 */
export const profiled = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.promise(async () => {
      const session = new Session()
      session.connect()
      await session.post("Profiler.enable")
      await session.post("Profiler.setSamplingInterval", { interval: 500 })
      await session.post("Profiler.start")
      return session
    }),
    (session) =>
      Effect.flatMap(effect, (result) =>
        Effect.promise(async () => {
          const { profile } = (await session.post("Profiler.stop")) as unknown as { profile: Profile }
          // RESTOCK_BENCH_CPUPROFILE=<file>: the raw profile too, for Chrome's DevTools or a closer look.
          const file = process.env.RESTOCK_BENCH_CPUPROFILE?.trim()
          if (file) writeFileSync(file, JSON.stringify(profile))
          return { result, buckets: buckets(profile) }
        })),
    (session) => Effect.sync(() => session.disconnect())
  )

const buckets = (profile: Profile): ReadonlyArray<Bucket> => {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const totals = new Map<string, number>()
  let all = 0
  profile.samples.forEach((id, i) => {
    const micros = profile.timeDeltas[i] ?? 0
    const node = byId.get(id)
    if (node === undefined) return
    const name = bucketOf(node.callFrame)
    if (name === profilerItself) return
    totals.set(name, (totals.get(name) ?? 0) + micros)
    all += micros
  })
  return [...totals.entries()]
    .map(([name, micros]) => ({ name, ms: micros / 1000, share: micros / all }))
    .sort((a, b) => b.ms - a.ms)
}
