/**
 * An HTTP sender in a child process (`sender-process.ts`): it answers like
 * `test/support/Sender.ts`, after its latency, and stamps each request where
 * it arrives, but on an event loop of its own. In the bench process its
 * work (parsing 500 requests a second, their timers) would stall the very
 * start loop whose rate it measures; a real sender is elsewhere.
 */
import { Deferred, Effect, type Scope } from "effect"
import { fork } from "node:child_process"
import { setPriority } from "node:os"
import { fileURLToPath } from "node:url"

/** How long the sender waits before it answers, in ms: fixed, or uniform in a range. */
export type Latency = number | { readonly minMs: number; readonly maxMs: number }

export type Request =
  | { readonly type: "arrivals"; readonly id: number }
  | { readonly type: "clear"; readonly id: number }
  | { readonly type: "stall"; readonly id: number }

export type Response =
  | { readonly type: "listening"; readonly url: string }
  | { readonly type: "arrivals"; readonly id: number; readonly arrivals: ReadonlyArray<Arrival> }
  | { readonly type: "cleared"; readonly id: number }
  | { readonly type: "stall"; readonly id: number; readonly ms: number }

/** A request as it arrived: when (epoch ms), and the product and send start (`sentAt`, epoch ms) its body named. */
export interface Arrival {
  readonly at: number
  readonly productId: number | undefined
  readonly sentAt: number | undefined
}

export interface RemoteSender {
  readonly url: string
  /** The requests that arrived since the last `clearArrivals`. */
  readonly arrivals: Effect.Effect<ReadonlyArray<Arrival>>
  /** When each of them arrived. */
  readonly arrivalTimes: Effect.Effect<ReadonlyArray<number>>
  /** Forgets the arrivals, and the longest stall of the sender's event loop. */
  readonly clearArrivals: Effect.Effect<void>
  /** The longest stall of the sender's event loop since `clearArrivals`, in ms: arrivals meanwhile were stamped together after it. */
  readonly receiverStallMs: Effect.Effect<number>
  /** Returns once `count` requests have arrived (polled every 50 ms). */
  readonly awaitArrivals: (count: number) => Effect.Effect<void>
}

const script = fileURLToPath(new URL("./sender-process.ts", import.meta.url))

/**
 * The sender's scheduling priority (nice), when this process may raise it:
 * a third party's sender runs on a machine of its own, while here it shares
 * two cores with the processes it measures, and a sender waiting for a core
 * stamps the requests that arrived meanwhile together, late (measured: its
 * loop stalled up to 25 ms with the starts at most 496 in a second, and it
 * counted 502). Without the privilege it runs at the default priority.
 */
export const senderPriority = -10

/** Whether the running sender got `senderPriority`. */
export let senderPrioritized = false

const prioritize = (pid: number | undefined) => {
  if (pid === undefined) return
  try {
    setPriority(pid, senderPriority)
    senderPrioritized = true
  } catch {
    senderPrioritized = false
  }
}

export const start = (latency: Latency): Effect.Effect<RemoteSender, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const listening = yield* Deferred.make<string, Error>()
    const pending = new Map<number, (response: Response) => void>()
    let nextId = 0
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = fork(script, [JSON.stringify(latency)], { execArgv: ["--import", "tsx"], stdio: "inherit" })
        child.on("message", (response: Response) => {
          if (response.type === "listening") Deferred.unsafeDone(listening, Effect.succeed(response.url))
          else pending.get(response.id)?.(response)
        })
        child.on("exit", (code) => Deferred.unsafeDone(listening, Effect.fail(new Error(`the sender process exited (${code})`))))
        prioritize(child.pid)
        return child
      }),
      (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
    )
    const url = yield* Deferred.await(listening).pipe(Effect.timeout("30 seconds"), Effect.mapError((e) => new Error(String(e))))

    const ask = (type: Request["type"]) =>
      Effect.async<Response>((resume) => {
        const id = ++nextId
        pending.set(id, (response) => {
          pending.delete(id)
          resume(Effect.succeed(response))
        })
        child.send({ type, id } satisfies Request)
      })

    const arrivals = Effect.map(ask("arrivals"), (response) => (response.type === "arrivals" ? response.arrivals : []))
    const arrivalTimes = Effect.map(arrivals, (all) => all.map((arrival) => arrival.at))
    const awaitArrivals = (count: number): Effect.Effect<void> =>
      Effect.flatMap(arrivalTimes, (times) =>
        times.length >= count ? Effect.void : Effect.zipRight(Effect.sleep("50 millis"), awaitArrivals(count)))

    const receiverStallMs = Effect.map(ask("stall"), (response) => (response.type === "stall" ? response.ms : Number.NaN))
    return { url, arrivals, arrivalTimes, clearArrivals: Effect.asVoid(ask("clear")), receiverStallMs, awaitArrivals }
  })
