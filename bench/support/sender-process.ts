/**
 * The bench's HTTP sender in a Node process of its own (started by
 * `RemoteSender.ts`): a third party's sender does not share the event loop
 * of the process whose rate it stamps. It answers its parent over IPC.
 *
 * It answers like `test/support/Sender.ts` (200 after the latency) but keeps
 * only what the benches read of each request, in typed arrays: the test
 * sender keeps every request whole, and the garbage collector's pauses over
 * thousands of them stalled this loop for 10 ms at a time, and every stall
 * stamps the requests that arrived during it together, after it.
 */
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { monitorEventLoopDelay } from "node:perf_hooks"
import { makeClient } from "./Comparisons.js"
import type { Arrival, Latency, Request, Response } from "./RemoteSender.js"

/** Requests the sender sends itself before it is used: a third party's sender is a warm, long-running server. */
const warmUpRequests = 3_000

const configured = JSON.parse(process.argv[2] ?? "null") as Latency | null
let latency: Latency | undefined = undefined

/** Arrivals as columns: when (epoch ms), the product, the body's `sentAt` (epoch ms; NaN if none). */
let capacity = 16_384
let count = 0
let at = new Float64Array(capacity)
let productIds = new Float64Array(capacity)
let sentAts = new Float64Array(capacity)

const record = (when: number, productId: number, sentAt: number) => {
  if (count === capacity) {
    capacity *= 2
    const grow = (column: Float64Array) => {
      const larger = new Float64Array(capacity)
      larger.set(column)
      return larger
    }
    at = grow(at)
    productIds = grow(productIds)
    sentAts = grow(sentAts)
  }
  at[count] = when
  productIds[count] = productId
  sentAts[count] = sentAt
  count += 1
}

const arrivals = (): Array<Arrival> =>
  Array.from({ length: count }, (_, i) => ({
    at: at[i]!,
    productId: Number.isNaN(productIds[i]!) ? undefined : productIds[i]!,
    sentAt: Number.isNaN(sentAts[i]!) ? undefined : sentAts[i]!
  }))

const delay = (): number => {
  if (latency === undefined) return 0
  if (typeof latency === "number") return latency
  return latency.minMs + Math.random() * (latency.maxMs - latency.minMs)
}

const ok = Buffer.from(`{"ok":true}`)

const server = Http.createServer({ keepAliveTimeout: 30_000 }, (request, response) => {
  const when = performance.timeOrigin + performance.now()
  const chunks: Array<Buffer> = []
  request.on("data", (chunk: Buffer) => chunks.push(chunk))
  request.on("end", () => {
    let productId = Number.NaN
    let sentAt = Number.NaN
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { productId?: unknown; sentAt?: unknown }
      if (typeof body.productId === "number") productId = body.productId
      if (typeof body.sentAt === "string") sentAt = Date.parse(body.sentAt)
    } catch {
      // Not JSON: counted all the same.
    }
    record(when, productId, sentAt)
    const answer = () => {
      response.writeHead(200, { "content-type": "application/json", "content-length": ok.byteLength })
      response.end(ok)
    }
    const wait = delay()
    if (wait > 0) setTimeout(answer, wait)
    else answer()
  })
})

const loopDelay = monitorEventLoopDelay({ resolution: 1 })
const clear = () => {
  count = 0
  loopDelay.reset()
}

const reply = (response: Response) => process.send!(response)

// An orphan never outlives the bench.
process.on("disconnect", () => process.exit(0))

process.on("message", (request: Request) => {
  switch (request.type) {
    case "arrivals":
      return reply({ type: "arrivals", id: request.id, arrivals: arrivals() })
    case "clear":
      clear()
      return reply({ type: "cleared", id: request.id })
    case "stall":
      return reply({ type: "stall", id: request.id, ms: loopDelay.max / 1e6 })
  }
})

server.listen(0, "127.0.0.1", async () => {
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/notify`
  // Warmed up from inside its own process (the process being measured stays as cold as it
  // is): a sender still compiling its request path stamps the first arrivals late.
  const client = makeClient(url)
  let sent = 0
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (sent++ < warmUpRequests) await client.send(sent)
  }))
  await client.close()
  latency = configured ?? undefined
  loopDelay.enable()
  clear()
  reply({ type: "listening", url })
})
