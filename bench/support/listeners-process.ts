/**
 * Many SSE listeners in a Node process of their own (started by
 * `SseClients.ts`): the service's listeners are elsewhere, and parsing
 * 20,000 streams would otherwise share the bench process with what it
 * measures. One socket each (plain `node:http`, no agent pooling), spread
 * over the source addresses 127.0.0.1–127.0.0.8 so that ephemeral ports
 * never run short, and `eventsource-parser`. Each `restock` event's latency
 * is its receipt here minus its `sentAt` (one machine's clock). It answers
 * its parent over IPC.
 */
import { createParser } from "eventsource-parser"
import * as Http from "node:http"
import type { ListenerRequest, ListenerResponse } from "./SseClients.js"

const sourceAddresses = 8

interface Listener {
  opened: boolean
  events: number
  ended: boolean
}

const listeners: Array<Listener> = []
const latencies: Array<number> = []
const requests = new Set<Http.ClientRequest>()

const connect = (url: string, index: number) =>
  new Promise<void>((resolve) => {
    const listener: Listener = { opened: false, events: 0, ended: false }
    listeners.push(listener)
    const parser = createParser({
      onEvent: (event) => {
        if (event.event !== "restock") return
        const data = JSON.parse(event.data) as { readonly sentAt: string }
        latencies.push(Date.now() - Date.parse(data.sentAt))
        listener.events += 1
      }
    })
    const request = Http.get(url, {
      agent: false,
      localAddress: `127.0.0.${1 + (index % sourceAddresses)}`,
      headers: { accept: "text/event-stream" }
    }, (response) => {
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => {
        if (!listener.opened && response.statusCode === 200) {
          listener.opened = true
          resolve()
        }
        parser.feed(chunk)
      })
      const end = () => {
        listener.ended = true
        resolve()
      }
      response.on("end", end)
      response.on("error", end)
    })
    requests.add(request)
    request.on("error", () => {
      listener.ended = true
      resolve()
    })
  })

const answer = (response: ListenerResponse) => process.send!(response)

process.on("message", async (request: ListenerRequest) => {
  if (request.type === "open") {
    const started = performance.now()
    let next = 0
    const worker = async () => {
      while (next < request.urls.length) {
        const index = next++
        await connect(request.urls[index]!, index)
      }
    }
    await Promise.all(Array.from({ length: request.concurrency }, worker))
    answer({
      type: "opened",
      open: listeners.filter((l) => l.opened && !l.ended).length,
      seconds: (performance.now() - started) / 1000
    })
  } else if (request.type === "report") {
    answer({
      type: "report",
      withEvent: listeners.filter((l) => l.events > 0).length,
      moreThanOnce: listeners.filter((l) => l.events > 1).length,
      ended: listeners.filter((l) => l.ended).length,
      latencies
    })
  } else {
    for (const open of requests) open.destroy()
    process.exit(0)
  }
})
process.send!({ type: "ready" } satisfies ListenerResponse)
