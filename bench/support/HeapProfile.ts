/**
 * What this process allocates while an effect runs: V8's sampling heap
 * profiler (through the inspector, in-process), told to keep the samples of
 * objects the collector has already freed, so the total is every byte
 * allocated, not what survived. Samples are taken every `intervalBytes` on
 * average and weighted by V8, so the figures are estimates, close at the
 * sizes measured here (megabytes per round).
 */
import { Effect } from "effect"
import { writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"

interface SamplingNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly selfSize: number
  readonly children: ReadonlyArray<SamplingNode>
}

export interface Allocator {
  /** `function (file:line)`, the file relative to the package or the repository. */
  readonly where: string
  readonly bytes: number
}

export interface Allocation {
  readonly totalBytes: number
  /** The functions that allocated the most themselves, largest first. */
  readonly top: ReadonlyArray<Allocator>
}

const shortUrl = (url: string): string => {
  const library = /node_modules\/(.+)$/.exec(url)?.[1]
  if (library !== undefined) return library.replace("/dist/esm/", "/")
  const ours = /\/((?:src|bench|test)\/.+)$/.exec(url)?.[1]
  return ours ?? (url || "(native)")
}

const summarize = (head: SamplingNode, topCount: number): Allocation => {
  const bySite = new Map<string, number>()
  let totalBytes = 0
  const walk = (node: SamplingNode) => {
    totalBytes += node.selfSize
    if (node.selfSize > 0) {
      const { functionName, lineNumber, url } = node.callFrame
      const where = `${functionName || "(anonymous)"} (${shortUrl(url)}:${lineNumber + 1})`
      bySite.set(where, (bySite.get(where) ?? 0) + node.selfSize)
    }
    for (const child of node.children) walk(child)
  }
  walk(head)
  const top = [...bySite.entries()]
    .map(([where, bytes]) => ({ where, bytes }))
    .sort((a, b) => b.bytes - a.bytes)
    .slice(0, topCount)
  return { totalBytes, top }
}

/** Runs `effect` under the sampling heap profiler; answers its result and what was allocated meanwhile. */
export const allocationOf = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  options: { readonly intervalBytes?: number; readonly top?: number } = {}
) =>
  Effect.acquireUseRelease(
    Effect.promise(async () => {
      const session = new Session()
      session.connect()
      await session.post("HeapProfiler.enable")
      await session.post("HeapProfiler.startSampling", {
        samplingInterval: options.intervalBytes ?? 4096,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true
      } as never)
      return session
    }),
    (session) =>
      Effect.flatMap(effect, (result) =>
        Effect.promise(async () => {
          const { profile } = (await session.post("HeapProfiler.stopSampling")) as unknown as {
            profile: { head: SamplingNode }
          }
          // RESTOCK_BENCH_HEAPPROFILE=<file>: the raw profile too, for Chrome's DevTools or a closer look.
          const file = process.env.RESTOCK_BENCH_HEAPPROFILE?.trim()
          if (file) writeFileSync(file, JSON.stringify(profile))
          return { result, allocation: summarize(profile.head, options.top ?? 15) }
        })),
    (session) => Effect.sync(() => session.disconnect())
  )
