/**
 * `npm run bench` runs every bench in sequence but `history` (10,000,000
 * rows: run it by name); `npm run bench -- rate sse` runs the ones named. Each bench works on its own fresh database and Redis
 * key prefix, stops by itself within its time bound, and cleans up (databases
 * dropped, keys deleted, processes stopped) whether it finished, failed or
 * was interrupted (Ctrl-C). Figures go to stdout as Markdown tables, charts
 * to `bench/charts/*.svg` (linked from stdout); progress to stderr. Exits 1
 * if a bench failed or missed a target.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Duration, Effect, Exit, Logger, LogLevel } from "effect"
import { cpus } from "node:os"
import type { Bench } from "./support/Bench.js"
import * as Chart from "./support/Chart.js"
import { fixed, machineLoad, now, type Target } from "./support/Measure.js"

const benches: ReadonlyArray<() => Promise<Bench>> = [
  () => import("./rate.js").then((module) => module.bench),
  () => import("./throughput.js").then((module) => module.bench),
  () => import("./memory.js").then((module) => module.bench),
  () => import("./sse.js").then((module) => module.bench),
  () => import("./cluster.js").then((module) => module.bench),
  () => import("./load.js").then((module) => module.bench),
  () => import("./history.js").then((module) => module.bench)
]

const known = ["rate", "throughput", "memory", "sse", "cluster", "load", "history"] as const
/** Run only when named: `history` loads 10,000,000 rows (about a quarter of an hour here). */
const onlyWhenNamed: ReadonlyArray<string> = ["history"]

const print = (text: string) => process.stdout.write(`${text}\n`)

const main = Effect.gen(function*() {
  const asked = process.argv.slice(2).filter((arg) => arg !== "--")
  const unknown = asked.filter((name) => !(known as ReadonlyArray<string>).includes(name))
  if (unknown.length > 0) {
    return yield* Effect.fail(`unknown bench ${unknown.join(", ")}; choose from ${known.join(", ")}`)
  }
  const chosen = known.flatMap((name, index) =>
    (asked.length === 0 ? !onlyWhenNamed.includes(name) : asked.includes(name)) ? [benches[index]!] : [])

  print(`# restock bench — ${new Date().toISOString()}, Node ${process.version}, ${cpus().length} cores (${cpus()[0]?.model ?? "?"})`)
  const targets: Array<Target> = []
  const failed: Array<string> = []
  const started = now()
  for (const load of chosen) {
    const bench = yield* Effect.promise(load)
    print(`\n## ${bench.name} — ${bench.title}\n`)
    const loadBefore = machineLoad()
    const benchStarted = now()
    const exit = yield* bench.run.pipe(
      Effect.scoped,
      Effect.timeoutFail({
        duration: bench.timeout,
        onTimeout: () => `did not finish within ${Duration.format(Duration.decode(bench.timeout))}`
      }),
      Effect.exit
    )
    if (Exit.isSuccess(exit)) {
      for (const section of exit.value.sections) print(`${section}\n`)
      for (const chart of exit.value.charts ?? []) {
        const written = yield* Effect.promise(() => Chart.write(chart))
        print(`![${chart.title}](${written})\n`)
      }
      for (const t of exit.value.targets) print(`- ${t.met ? "met" : "MISSED"}: ${t.what} (${t.measured})`)
      targets.push(...exit.value.targets)
    } else {
      failed.push(bench.name)
      print(`FAILED: ${Cause.pretty(exit.cause)}`)
    }
    print(`\n(${bench.name}: ${fixed((now() - benchStarted) / 1000, 1)} s including set-up and clean-up; ` +
      `machine before: ${loadBefore}; after: ${machineLoad()})`)
  }

  const missed = targets.filter((t) => !t.met)
  print(`\n## summary — ${fixed((now() - started) / 1000, 0)} s\n`)
  print(`${targets.length - missed.length} of ${targets.length} targets met` +
    (missed.length > 0 ? `; MISSED: ${missed.map((t) => t.what).join("; ")}` : "") +
    (failed.length > 0 ? `; benches FAILED: ${failed.join(", ")}` : ""))
  if (missed.length > 0 || failed.length > 0) process.exitCode = 1
})

main.pipe(
  Effect.tapError((error) => Effect.sync(() => console.error(`bench: ${String(error)}`))),
  // The service's own logs (round ended, …) would drown the tables; warnings and errors still show.
  Logger.withMinimumLogLevel(LogLevel.Warning),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
