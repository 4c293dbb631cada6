/**
 * load — the API under load while a round is sent.
 *
 * One service process (compiled, `dist/main.js`, as `npm start` runs it) on MariaDB and Redis, sending through
 * the webhook notifier to a local sender (20 ± 10 ms, in a process of its
 * own, arrivals stamped where they arrive), limit 500/s. At each step of a
 * rising request rate, an HTTP load generator (autocannon, in the bench's
 * process) sends product reads and subscriptions (four `GET /products/{id}`
 * to one `PUT /products/{id}/subscriptions/{userId}`) at that rate over 20
 * connections, for as long as a round of 5,000 takes; the bench reports the
 * API's requests/s and latency beside the round's rate at the sender. The
 * last step sets no rate: the generator sends as fast as the service answers,
 * which says where the API's ceiling lies on this machine.
 *
 * Before the steps, a warm-up round of 1,000 with load at 250/s (a fresh
 * process compiles its paths in its first round): reported, not a target.
 */
import autocannon from "autocannon"
import { Effect } from "effect"
import * as Service from "../test/support/Service.js"
import type { Bench } from "./support/Bench.js"
import { fixed, rateFigures, type RateFigures, table, target, thousands } from "./support/Measure.js"
import * as RemoteSender from "./support/RemoteSender.js"
import { say } from "./support/Say.js"

const limit = 500
const subscribers = 5_000
const warmUpSubscribers = 1_000
/** Requests per second asked of the generator; `undefined`: as fast as it goes. */
const steps: ReadonlyArray<number | undefined> = [0, 250, 500, 1_000, 1_500, undefined]
const connections = 20

const roundProduct = 1
const warmUpProduct = 2
/** The products the load reads and subscribes to (not the round's: its audience stays 5,000). */
const loadProducts = [10, 11, 12, 13]

interface Load {
  readonly requestsPerSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly non2xx: number
  readonly errors: number
}

/**
 * Runs the generator against `baseUrl` at `rate` until `stop` is called;
 * answers what it measured. Subscriptions take fresh user ids, so each one
 * writes a row, as a shopper's would.
 */
const startLoad = (baseUrl: string, rate: number | undefined, firstUser: { next: number }) => {
  let reads = 0
  let finish: (result: autocannon.Result) => void = () => {}
  let fail: (error: unknown) => void = () => {}
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    finish = resolve
    fail = reject
  })
  // With a callback autocannon answers the running instance (to stop), not a promise.
  const instance = autocannon({
    url: baseUrl,
    connections,
    duration: 120,
    ...(rate === undefined ? {} : { overallRate: rate }),
    headers: { authorization: `Bearer ${Service.adminToken}` },
    requests: [
      ...[0, 1, 2, 3].map(() => ({
        method: "GET" as const,
        setupRequest: (request: any) => ({ ...request, path: `/products/${loadProducts[reads++ % loadProducts.length]}` })
      })),
      {
        method: "PUT" as const,
        setupRequest: (request: any) => ({
          ...request,
          path: `/products/${loadProducts[firstUser.next % loadProducts.length]}/subscriptions/${firstUser.next++}`
        })
      }
    ]
  }, (error, result) => (error ? fail(error) : finish(result)))
  return {
    stop: Effect.promise(async (): Promise<Load> => {
      instance.stop()
      const result = await done
      return {
        requestsPerSecond: result.requests.total / Math.max(result.duration, 1e-3),
        p50Ms: result.latency.p50,
        p99Ms: result.latency.p99,
        non2xx: result.non2xx,
        errors: result.errors + result.timeouts
      }
    })
  }
}

interface Step {
  readonly asked: number | undefined
  readonly load: Load | undefined
  readonly round: RateFigures
  readonly status: string
  readonly sentCount: number
  readonly serviceCpuSeconds: number
}

const runStep = (
  service: Service.ServiceProcess,
  sender: RemoteSender.RemoteSender,
  productId: number,
  asked: number | undefined,
  users: { next: number }
) =>
  Effect.gen(function*() {
    yield* sender.clearArrivals
    const load = asked === 0 ? undefined : startLoad(service.baseUrl, asked, users)
    // Let the generator reach its rate before the round starts.
    if (load !== undefined) yield* Effect.sleep("1 second")
    const cpuBefore = service.cpuMillis() ?? Number.NaN
    const started = yield* Service.trigger(service, productId)
    const finished = yield* Service.awaitTerminal(service, productId, started.restockRound, "180 seconds")
    const cpu = ((service.cpuMillis() ?? Number.NaN) - cpuBefore) / 1000
    const measured = load === undefined ? undefined : yield* load.stop
    const arrivals = yield* sender.arrivalTimes
    return {
      asked,
      load: measured,
      round: rateFigures(arrivals, limit),
      status: finished.status,
      sentCount: finished.sentCount,
      serviceCpuSeconds: cpu
    } satisfies Step
  })

const askedLabel = (asked: number | undefined) =>
  asked === undefined ? "as fast as it goes" : asked === 0 ? "none (the round alone)" : `${thousands(asked)}/s`

const row = (step: Step) => [
  askedLabel(step.asked),
  step.load === undefined ? "—" : thousands(step.load.requestsPerSecond),
  step.load === undefined ? "—" : fixed(step.load.p50Ms, 0),
  step.load === undefined ? "—" : fixed(step.load.p99Ms, 0),
  step.load === undefined ? "—" : `${step.load.non2xx} / ${step.load.errors}`,
  `${step.status} ${thousands(step.sentCount)}`,
  fixed(step.round.efficiency, 3),
  String(step.round.worstSecond),
  String(step.round.windowsOverLimit),
  fixed(step.serviceCpuSeconds, 1)
]

export const run = Effect.gen(function*() {
  const backing = yield* Service.Backing
  const sender = yield* RemoteSender.start({ minMs: 10, maxMs: 30 })
  const service = yield* Service.start({ name: "service", ...backing, compiled: true, webhookUrl: sender.url, rateLimitPerSecond: limit })
  yield* Service.seedProduct(service, roundProduct, { stock: 1_000_000, subscribers })
  yield* Service.seedProduct(service, warmUpProduct, { stock: 1_000_000, subscribers: warmUpSubscribers, firstUser: 1_000_001 })
  for (const productId of loadProducts) yield* Service.seedProduct(service, productId, { stock: 0, subscribers: 0 })
  const users = { next: 10_000_001 }

  say(`warm-up: a round of ${thousands(warmUpSubscribers)} with load at 250/s`)
  const warmUp = yield* runStep(service, sender, warmUpProduct, 250, users)
  const measured: Array<Step> = []
  for (const asked of steps) {
    say(`load ${askedLabel(asked)} while a round of ${thousands(subscribers)} is sent`)
    measured.push(yield* runStep(service, sender, roundProduct, asked, users))
  }

  const atOrBelow1000 = measured.filter((step) => step.asked !== undefined && step.asked <= 1_000)
  const at1000 = measured.find((step) => step.asked === 1_000)!
  const header = [
    "load asked", "API requests/s", "p50 ms", "p99 ms", "non-2xx / errors", "round", "round rate / limit",
    "worst second", "windows over 500", "service CPU s"
  ]
  return {
    sections: [
      table(header, [...measured.map(row), row(warmUp).map((cell, i) => (i === 0 ? `warm-up, ${cell}, ${thousands(warmUpSubscribers)} (not a target)` : cell))]),
      `Load: ${connections} connections, four \`GET /products/{id}\` to one \`PUT /products/{id}/subscriptions/{userId}\` ` +
      `(a new user each, admin token), from the bench's process; the service and the sender run in processes of their own. ` +
      `The latency is autocannon's, corrected for coordinated omission where a rate is set. ` +
      `The sender ran ${RemoteSender.senderPrioritized ? `at nice ${RemoteSender.senderPriority}` : "at the default priority"}.`
    ],
    targets: [
      target("load: every round COMPLETED with all its subscribers",
        measured.every((step) => step.status === "COMPLETED" && step.sentCount === subscribers && step.round.n === subscribers),
        measured.map((step) => `${step.status} ${step.round.n}`).join(", ")),
      target("load: at 1,000 requests/s the round keeps ≥ 0.95 of its limit", at1000.round.efficiency >= 0.95,
        `${fixed(at1000.round.efficiency, 3)} with ${thousands(at1000.load?.requestsPerSecond ?? Number.NaN)} requests/s served`),
      target("load: up to 1,000 requests/s the API answers every request 2xx",
        atOrBelow1000.every((step) => step.load === undefined || (step.load.non2xx === 0 && step.load.errors === 0)),
        atOrBelow1000.map((step) => `${step.load?.non2xx ?? 0}/${step.load?.errors ?? 0}`).join(", ")),
      target("load: never over the limit at the sender, at any load",
        measured.every((step) => step.round.windowsOverLimit === 0),
        measured.map((step) => step.round.worstSecond).join(", "))
    ]
  }
}).pipe(Effect.provide(Service.layerBacking))

export const bench: Bench = {
  name: "load",
  title: "The API under a rising request rate while a round of 5,000 is sent at 500/s",
  timeout: "6 minutes",
  run
}
