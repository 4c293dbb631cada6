/**
 * cluster — one limit across instances.
 *
 * Two service processes (compiled, `dist/main.js`, as `npm start` runs them) on one MariaDB database and one Redis
 * key prefix, both sending through the webhook notifier to one local sender
 * (20 ± 10 ms, arrivals stamped where they arrive), limit 500/s. Two products
 * of 5,000 subscribers each, triggered at the same moment, one on each
 * instance: the sender must never see more than 500 in a sliding second,
 * and together they should keep close to 500/s. The sender runs in a process
 * of its own. Before them, each instance sends a first round of 1,000 (the
 * two at once): a fresh process is still compiling its send path, so those
 * are reported on their own, and the rate the target names is the next
 * rounds', the sustained rate of running services.
 */
import { Effect } from "effect"
import { scrape } from "../test/Observability/Scrape.js"
import { checkLimit } from "../test/support/Deliveries.js"
import * as Service from "../test/support/Service.js"
import type { Bench } from "./support/Bench.js"
import * as RemoteSender from "./support/RemoteSender.js"
import { fixed, now, rateFigures, table, target, thousands } from "./support/Measure.js"
import { say } from "./support/Say.js"

const limit = 500
const subscribersEach = 5_000
const coldSubscribersEach = 1_000

/** A send whose request left more than this after its start (`restock_send_start_lag_seconds`, a bucket bound). */
const lagBoundSeconds = 0.008

/** Sends an instance held up more than `lagBoundSeconds` between their start and their request, so far. */
const sendsHeldUp = (instance: Service.ServiceProcess) =>
  Effect.promise(() => scrape(instance.baseUrl)).pipe(
    Effect.map((metrics) => metrics.histogramAbove("restock_send_start_lag_seconds", lagBoundSeconds))
  )
const latency = { minMs: 10, maxMs: 30 }

/**
 * The busiest second of the starts beside that of the arrivals, the spread of
 * the way between them, and the longest stall of the sender's own event loop
 * (arrivals meanwhile are stamped together after it).
 */
const describeEnds = (arrivals: ReadonlyArray<RemoteSender.Arrival>, receiverStallMs: number): string => {
  const timed = arrivals.flatMap(({ at, sentAt }) => (sentAt === undefined ? [] : [{ at, sentAt }]))
  const { arrivalsWorst, jitterMs, startsWorst } = checkLimit(timed, limit)
  return `starts' worst second ${startsWorst}, arrivals' ${arrivalsWorst}, path jitter ${fixed(jitterMs, 1)} ms ` +
    `(the sender's loop stalled up to ${fixed(receiverStallMs, 1)} ms)`
}

export const run = Effect.gen(function*() {
  const backing = yield* Service.Backing
  const sender = yield* RemoteSender.start(latency)
  say("starting two instances")
  const [a, b] = yield* Effect.all([
    Service.start({ name: "instance-a", ...backing, compiled: true, webhookUrl: sender.url, rateLimitPerSecond: limit }),
    Service.start({ name: "instance-b", ...backing, compiled: true, webhookUrl: sender.url, rateLimitPerSecond: limit })
  ], { concurrency: 2 })
  yield* Service.seedProduct(a, 1, { stock: 1_000_000, subscribers: subscribersEach })
  yield* Service.seedProduct(a, 2, { stock: 1_000_000, subscribers: subscribersEach, firstUser: subscribersEach + 1 })
  yield* Service.seedProduct(a, 3, { stock: 1_000_000, subscribers: coldSubscribersEach, firstUser: 1_000_001 })
  yield* Service.seedProduct(a, 4, { stock: 1_000_000, subscribers: coldSubscribersEach, firstUser: 2_000_001 })

  say(`first rounds of the fresh processes: product 3 on A and product 4 on B, ${thousands(coldSubscribersEach)} each, at once`)
  yield* sender.clearArrivals
  const coldCpuBefore = [a.cpuMillis() ?? Number.NaN, b.cpuMillis() ?? Number.NaN] as const
  const [coldA, coldB] = yield* Effect.all([Service.trigger(a, 3), Service.trigger(b, 4)], { concurrency: 2 })
  const [coldFinishedA, coldFinishedB] = yield* Effect.all([
    Service.awaitTerminal(a, 3, coldA.restockRound, "60 seconds"),
    Service.awaitTerminal(b, 4, coldB.restockRound, "60 seconds")
  ], { concurrency: 2 })
  const coldCpu = [(a.cpuMillis() ?? Number.NaN) - coldCpuBefore[0], (b.cpuMillis() ?? Number.NaN) - coldCpuBefore[1]]
  const coldArrivals = yield* sender.arrivals
  const coldStall = yield* sender.receiverStallMs
  const cold = rateFigures(coldArrivals.map((x) => x.at), limit)

  say(`product 1 on instance A and product 2 on instance B, ${thousands(subscribersEach)} subscribers each, at once`)
  yield* sender.clearArrivals
  const heldUpBefore = [yield* sendsHeldUp(a), yield* sendsHeldUp(b)] as const
  const cpuBefore = [a.cpuMillis() ?? Number.NaN, b.cpuMillis() ?? Number.NaN] as const
  const started = now()
  const [roundA, roundB] = yield* Effect.all([Service.trigger(a, 1), Service.trigger(b, 2)], { concurrency: 2 })
  const [finishedA, finishedB] = yield* Effect.all([
    Service.awaitTerminal(a, 1, roundA.restockRound, "120 seconds"),
    Service.awaitTerminal(b, 2, roundB.restockRound, "120 seconds")
  ], { concurrency: 2 })
  const seconds = (now() - started) / 1000
  const cpu = [(a.cpuMillis() ?? Number.NaN) - cpuBefore[0], (b.cpuMillis() ?? Number.NaN) - cpuBefore[1]]

  const arrivals = yield* sender.arrivals
  const stall = yield* sender.receiverStallMs
  const heldUp = [(yield* sendsHeldUp(a)) - heldUpBefore[0], (yield* sendsHeldUp(b)) - heldUpBefore[1]] as const
  const all = rateFigures(arrivals.map((x) => x.at), limit)
  const ofProduct = (productId: number) => rateFigures(arrivals.filter((x) => x.productId === productId).map((x) => x.at), limit)
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
        ["arrivals at the sender", "sends", "worst second", "windows over 500", "rate /s", "rate / limit", "span s", "CPU ms/send (instance)"],
        [
          row("both instances together", all),
          row("product 1 (instance A)", perA, fixed(cpu[0]! / subscribersEach, 2)),
          row("product 2 (instance B)", perB, fixed(cpu[1]! / subscribersEach, 2)),
          row(
            `first rounds of the fresh processes (${thousands(coldSubscribersEach)} each, both together; reported, not the target)`,
            cold,
            `A ${fixed(coldCpu[0]! / coldSubscribersEach, 2)}, B ${fixed(coldCpu[1]! / coldSubscribersEach, 2)}`
          )
        ]
      ),
      `Rounds: A ${finishedA.status} ${thousands(finishedA.sentCount)}, B ${finishedB.status} ${thousands(finishedB.sentCount)}; ` +
      `trigger to both terminal ${fixed(seconds, 2)} s vs ideal ${fixed(ideal, 2)} s for ${thousands(total)} at ${limit}/s ` +
      `(ideal/total ${fixed(ideal / seconds, 3)}).`,
      `Both ends of the way (the starts are the bodies' \`sentAt\`, in whole ms): ${describeEnds(arrivals, stall)} in the rounds ` +
      `of 5,000; ${describeEnds(coldArrivals, coldStall)} in the first rounds. In the rounds of 5,000, sends whose ` +
      `request left more than ${lagBoundSeconds * 1000} ms after their start: ${heldUp[0]} on A, ${heldUp[1]} on B ` +
      `(restock_send_start_lag_seconds). The sender ran ` +
      (RemoteSender.senderPrioritized ? `at nice ${RemoteSender.senderPriority}.` : "at the default priority (raising it was refused).")
    ],
    targets: [
      target("cluster: both rounds COMPLETED, every subscriber sent once",
        finishedA.status === "COMPLETED" && finishedB.status === "COMPLETED" && all.n === total,
        `${finishedA.status}/${finishedB.status}, ${thousands(all.n)} arrivals`),
      target("cluster: 0 sliding seconds over the limit, combined", all.windowsOverLimit === 0,
        `worst second ${all.worstSecond}, ${all.windowsOverLimit} windows over`),
      target("cluster: 0 sliding seconds over the limit in the fresh processes' first rounds, combined",
        cold.windowsOverLimit === 0 && coldFinishedA.status === "COMPLETED" && coldFinishedB.status === "COMPLETED",
        `worst second ${cold.worstSecond}, ${cold.windowsOverLimit} windows over`),
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
