/**
 * A stand-in for the third-party sender: a real HTTP server on 127.0.0.1 (a
 * random port) that timestamps every request where it arrives, the way the
 * third party measures the rate limit.
 *
 * Used by tests and benchmarks alike, so it imports no test framework. Start
 * it as a scoped resource:
 *
 *     const sender = yield* TestSender.start({ latency: { minMs: 10, maxMs: 30 } })
 *     // ... point the webhook notifier at sender.url ...
 *     sender.arrivals()
 *
 * Real time, on purpose: it plays a process outside the service, whose clock
 * the service's `TestClock` does not drive.
 */
import { Effect, type Scope } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { type IntervalHistogram, monitorEventLoopDelay, performance } from "node:perf_hooks"

/** One request as the sender saw it. */
export interface Arrival {
  /** 1 for the first request the server received, in arrival order. */
  readonly index: number
  /** When the request's headers arrived, in epoch milliseconds with sub-millisecond precision. */
  readonly at: number
  readonly method: string
  readonly path: string
  readonly idempotencyKey: string | undefined
  readonly contentType: string | undefined
  /** Every request header, names in lower case. */
  readonly headers: Readonly<Http.IncomingHttpHeaders>
  /** The raw body, as sent. */
  readonly rawBody: string
  /** The body parsed as JSON (`undefined` when it is not JSON). */
  readonly body: unknown
  /** `body.userId` when the body has one. */
  readonly userId: number | undefined
  /** Which connection carried it (1 for the first socket the server accepted). */
  readonly socket: number
  /** The status it was answered with (`undefined` while unanswered, or never answered). */
  readonly status: number | undefined
}

/** How to answer one request; `Hang` never answers (until the server stops). */
export type Reply =
  | {
    readonly status: number
    readonly headers?: Readonly<Record<string, string>> | undefined
    readonly body?: string | undefined
  }
  | { readonly _tag: "Hang" }

/** Decides a request's answer; `undefined` means the default `200 {"ok":true}`. */
export type Script = (arrival: Arrival) => Reply | undefined

/** Per-request latency in milliseconds: fixed, uniform in a range, or computed. */
export type Latency =
  | number
  | { readonly minMs: number; readonly maxMs: number }
  | ((arrival: Arrival) => number)

export interface SenderOptions {
  /** How long before answering (default 0). A benchmark would use `{ minMs: 20, maxMs: 30 }`. */
  readonly latency?: Latency | undefined
  readonly script?: Script | undefined
}

export interface TestSender {
  /** `http://127.0.0.1:<port>/notify` */
  readonly url: string
  /** Every request received so far, in arrival order. */
  readonly arrivals: () => ReadonlyArray<Arrival>
  /** How many TCP connections the server has accepted. */
  readonly connections: () => number
  /** Replaces the script for requests arriving from now on. */
  readonly setScript: (script: Script | undefined) => void
  readonly setLatency: (latency: Latency | undefined) => void
  /** Completes once `count` requests have arrived (fully read). Real time. */
  readonly awaitArrivals: (count: number) => Effect.Effect<ReadonlyArray<Arrival>>
  /** Forgets the arrivals (the connection count and request numbering go on). */
  readonly clearArrivals: () => void
  /**
   * The longest this process' event loop was held up since the start (or the
   * last `resetReceiverStall`), in ms: for that long, arriving requests were
   * not stamped, and were stamped together after. Requests that arrived
   * evenly can then read as up to `stall / spacing` more in one sliding second.
   */
  readonly receiverStallMs: () => number
  readonly resetReceiverStall: () => void
}

export const hang: Reply = { _tag: "Hang" }

/** Answers `reply` to the given users, every time. */
export const forUsers = (userIds: Iterable<number>, reply: Reply): Script => {
  const users = new Set(userIds)
  return (arrival) => (arrival.userId !== undefined && users.has(arrival.userId) ? reply : undefined)
}

/** Answers `reply` to the k-th request (1-based, counted from the server's start). */
export const forRequest = (k: number, reply: Reply): Script => (arrival) => (arrival.index === k ? reply : undefined)

/** The first script that has an answer wins. */
export const firstOf = (...scripts: ReadonlyArray<Script>): Script => (arrival) => {
  for (const script of scripts) {
    const reply = script(arrival)
    if (reply !== undefined) return reply
  }
  return undefined
}

export const now = (): number => performance.timeOrigin + performance.now()

/** Starts the server; it stops (dropping open connections) when the scope closes. */
export const start = (options: SenderOptions = {}): Effect.Effect<TestSender, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ readonly server: Http.Server; readonly loopDelay: IntervalHistogram; readonly sender: TestSender }>((resume) => {
      let script = options.script
      let latency = options.latency
      let received = 0
      let sockets = 0
      let arrivals: Array<Arrival> = []
      const waiters = new Set<{ readonly count: number; readonly done: () => void }>()
      const socketIds = new WeakMap<object, number>()
      const loopDelay = monitorEventLoopDelay({ resolution: 1 })
      loopDelay.enable()

      const record = (arrival: Arrival) => {
        arrivals.push(arrival)
        for (const waiter of waiters) if (arrivals.length >= waiter.count) waiter.done()
      }

      const server = Http.createServer({ keepAliveTimeout: 30_000 }, (request, response) => {
        const at = now()
        const index = ++received
        const chunks: Array<Buffer> = []
        request.on("data", (chunk: Buffer) => chunks.push(chunk))
        request.on("end", () => {
          const rawBody = Buffer.concat(chunks).toString("utf8")
          const body = parseJson(rawBody)
          const userId = typeof body === "object" && body !== null && "userId" in body && typeof body.userId === "number"
            ? body.userId
            : undefined
          const header = (name: string) => {
            const value = request.headers[name]
            return Array.isArray(value) ? value.join(", ") : value
          }
          const arrival = {
            index,
            at,
            method: request.method ?? "",
            path: request.url ?? "",
            idempotencyKey: header("idempotency-key"),
            contentType: header("content-type"),
            headers: request.headers,
            rawBody,
            body,
            userId,
            socket: socketIds.get(request.socket) ?? 0,
            status: undefined as number | undefined
          }
          record(arrival)
          const reply = script?.(arrival) ?? { status: 200, body: `{"ok":true}` }
          if ("_tag" in reply) return
          const answer = () => {
            arrival.status = reply.status
            const text = reply.body ?? ""
            response.writeHead(reply.status, {
              "content-type": "application/json",
              "content-length": Buffer.byteLength(text),
              ...reply.headers
            })
            response.end(text)
          }
          const delay = latencyFor(latency, arrival)
          if (delay > 0) setTimeout(answer, delay)
          else answer()
        })
      })
      server.on("connection", (socket) => socketIds.set(socket, ++sockets))

      const sender: TestSender = {
        url: "",
        arrivals: () => arrivals,
        connections: () => sockets,
        setScript: (next) => {
          script = next
        },
        setLatency: (next) => {
          latency = next
        },
        awaitArrivals: (count) =>
          Effect.async<ReadonlyArray<Arrival>>((resumeWaiter) => {
            const waiter = {
              count,
              done: () => {
                waiters.delete(waiter)
                resumeWaiter(Effect.succeed(arrivals))
              }
            }
            if (arrivals.length >= count) return resumeWaiter(Effect.succeed(arrivals))
            waiters.add(waiter)
            return Effect.sync(() => waiters.delete(waiter))
          }),
        clearArrivals: () => {
          arrivals = []
        },
        receiverStallMs: () => loopDelay.max / 1e6,
        resetReceiverStall: () => loopDelay.reset()
      }

      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({ server, loopDelay, sender: { ...sender, url: `http://127.0.0.1:${port}/notify` } }))
      })
    }),
    ({ loopDelay, server }) =>
      Effect.async<void>((resume) => {
        loopDelay.disable()
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ sender }) => sender))

const latencyFor = (latency: Latency | undefined, arrival: Arrival): number => {
  if (latency === undefined) return 0
  if (typeof latency === "number") return latency
  if (typeof latency === "function") return latency(arrival)
  return latency.minMs + Math.random() * (latency.maxMs - latency.minMs)
}

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/**
 * The most arrivals in any window of `windowMs` (default one second): the
 * "worst second" a sender enforcing a sliding-window limit would see.
 */
export const worstWindow = (arrivals: ReadonlyArray<Pick<Arrival, "at">>, windowMs = 1000): number => {
  const times = arrivals.map((arrival) => arrival.at).sort((a, b) => a - b)
  let worst = 0
  let first = 0
  for (let last = 0; last < times.length; last++) {
    while (times[last]! - times[first]! >= windowMs) first++
    worst = Math.max(worst, last - first + 1)
  }
  return worst
}
