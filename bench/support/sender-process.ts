/**
 * The bench's HTTP sender in a Node process of its own (started by
 * `RemoteSender.ts`): a third party's sender does not share the event loop
 * of the process whose rate it stamps. It answers its parent over IPC.
 */
import { Effect } from "effect"
import * as TestSender from "../../test/support/Sender.js"
import { makeClient } from "./Comparisons.js"
import type { Request, Response } from "./RemoteSender.js"

/** Requests the sender sends itself before it is used: a third party's sender is a warm, long-running server. */
const warmUpRequests = 3_000

const latency = JSON.parse(process.argv[2] ?? "null") as TestSender.Latency | undefined

const reply = (response: Response) => process.send!(response)

// An orphan never outlives the bench.
process.on("disconnect", () => process.exit(0))

Effect.runFork(Effect.scoped(Effect.gen(function*() {
  const sender = yield* TestSender.start({ latency: latency ?? undefined })
  // Warmed up from inside its own process (the process being measured stays as cold as it is):
  // a sender still compiling its request path stamps the first few hundred arrivals late.
  sender.setLatency(undefined)
  yield* Effect.promise(async () => {
    const client = makeClient(sender.url)
    let sent = 0
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (sent++ < warmUpRequests) await client.send(sent)
    }))
    await client.close()
  })
  sender.setLatency(latency ?? undefined)
  sender.clearArrivals()
  sender.resetReceiverStall()
  process.on("message", (request: Request) => {
    switch (request.type) {
      case "arrivals":
        return reply({
          type: "arrivals",
          id: request.id,
          arrivals: sender.arrivals().map((arrival) => {
            const body = arrival.body as { readonly productId?: number; readonly sentAt?: string } | undefined
            return {
              at: arrival.at,
              productId: body?.productId,
              sentAt: body?.sentAt === undefined ? undefined : Date.parse(body.sentAt)
            }
          })
        })
      case "clear":
        sender.clearArrivals()
        sender.resetReceiverStall()
        return reply({ type: "cleared", id: request.id })
      case "stall":
        return reply({ type: "stall", id: request.id, ms: sender.receiverStallMs() })
    }
  })
  reply({ type: "listening", url: sender.url })
  yield* Effect.never
})))
