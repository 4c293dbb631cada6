/**
 * cluster — one limit across instances.
 *
 * Two service processes (`src/main.ts`) on one MariaDB database and one Redis
 * key prefix, both sending through the webhook notifier to one local sender
 * (20 ± 10 ms, arrivals stamped where they arrive), limit 500/s. Two products
 * of 5,000 subscribers each, triggered at the same moment, one on each
 * instance: the sender must never see more than 500 in a sliding second,
 * and together they should keep close to 500/s.
 */
import { Effect } from "effect"
import * as Service from "../test/support/Service.js"
import * as TestSender from "../test/support/Sender.js"
import type { Bench } from "./support/Bench.js"
import { fixed, now, rateFigures, table, target, thousands } from "./support/Measure.js"
import { say } from "./support/Say.js"

const limit = 500
const subscribersEach = 5_000
const latency = { minMs: 10, maxMs: 30 }

export const run = Effect.gen(function*() {
  const backing = yield* Service.Backing
  const sender = yield* TestSender.start({ latency })
  say("starting two instances")
  const [a, b] = yield* Effect.all([
    Service.start({ name: "instance-a", ...backing, webhookUrl: sender.url, rateLimitPerSecond: limit }),
    Service.start({ name: "instance-b", ...backing, webhookUrl: sender.url, rateLimitPerSecond: limit })
  ], { concurrency: 2 })
  yield* Service.seedProduct(a, 1, { stock: 1_000_000, subscribers: subscribersEach })
  yield* Service.seedProduct(a, 2, { stock: 1_000_000, subscribers: subscribersEach, firstUser: subscribersEach + 1 })

  say(`product 1 on instance A and product 2 on instance B, ${thousands(subscribersEach)} subscribers each, at once`)
  sender.clearArrivals()
  const cpuBefore = [a.cpuMillis() ?? Number.NaN, b.cpuMillis() ?? Number.NaN] as const
  const started = now()
  const [roundA, roundB] = yield* Effect.all([Service.trigger(a, 1), Service.trigger(b, 2)], { concurrency: 2 })
  const [finishedA, finishedB] = yield* Effect.all([
    Service.awaitTerminal(a, 1, roundA.restockRound, "120 seconds"),
    Service.awaitTerminal(b, 2, roundB.restockRound, "120 seconds")
  ], { concurrency: 2 })
  const seconds = (now() - started) / 1000
  const cpu = [(a.cpuMillis() ?? Number.NaN) - cpuBefore[0], (b.cpuMillis() ?? Number.NaN) - cpuBefore[1]]

  const arrivals = sender.arrivals()
  const all = rateFigures(arrivals.map((x) => x.at), limit)
  const ofProduct = (productId: number) =>
    rateFigures(arrivals.filter((x) => (x.body as { productId?: number } | undefined)?.productId === productId).map((x) => x.at), limit)
  const perA = ofProduct(1)
  const perB = ofProduct(2)
  const total = 2 * subscribersEach
  const ideal = (total - 1) / limit
  const row = (what: string, f: typeof all, extra = "") => [
    what,
    thousands(f.n),
    String(f.worstSecond),
    String(f.windowsOverLimit),
    fixed(f.achievedPerSecond, 1),
    fixed(f.efficiency, 3),
    fixed(f.spanSeconds, 2),
    extra
  ]
  return {
    sections: [
      table(
        ["arrivals at the sender", "sends", "worst second", "windows over 500", "rate /s", "rate / limit", "span s", "CPU s (instance)"],
        [
          row("both instances together", all),
          row("product 1 (instance A)", perA, fixed(cpu[0]! / 1000, 1)),
          row("product 2 (instance B)", perB, fixed(cpu[1]! / 1000, 1))
        ]
      ),
      `Rounds: A ${finishedA.status} ${thousands(finishedA.sentCount)}, B ${finishedB.status} ${thousands(finishedB.sentCount)}; ` +
      `trigger to both terminal ${fixed(seconds, 2)} s vs ideal ${fixed(ideal, 2)} s for ${thousands(total)} at ${limit}/s ` +
      `(ideal/total ${fixed(ideal / seconds, 3)}).`
    ],
    targets: [
      target("cluster: both rounds COMPLETED, every subscriber sent once",
        finishedA.status === "COMPLETED" && finishedB.status === "COMPLETED" && all.n === total,
        `${finishedA.status}/${finishedB.status}, ${thousands(all.n)} arrivals`),
      target("cluster: 0 sliding seconds over the limit, combined", all.windowsOverLimit === 0,
        `worst second ${all.worstSecond}, ${all.windowsOverLimit} windows over`),
      target("cluster: combined rate ≥ 0.98 of the limit", all.efficiency >= 0.98, fixed(all.efficiency, 3))
    ]
  }
}).pipe(Effect.provide(Service.layerBacking))

export const bench: Bench = {
  name: "cluster",
  title: "Two instances, two products of 5,000, one sender, one limit (500/s)",
  timeout: "4 minutes",
  run
}
