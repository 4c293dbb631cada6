/**
 * Many lightweight SSE listeners in this process: one socket each (plain
 * `node:http`, no agent pooling) and `eventsource-parser`, noting when each
 * connection opened and when each `restock` event arrived. Thousands fit in
 * one process; every socket is destroyed when the scope closes.
 */
import { Effect, type Scope } from "effect"
import { createParser } from "eventsource-parser"
import * as Http from "node:http"
import { now } from "./Measure.js"

export interface Received {
  readonly at: number
  /** The event's `sentAt` (when the service started the send), epoch ms. */
  readonly sentAt: number
  readonly id: string
}

export interface Listener {
  readonly userId: number
  /** When the first bytes (the `retry:` field) arrived: the subscription is live. */
  opened: number | undefined
  readonly events: Array<Received>
  /** Set when the server ended or broke the stream. */
  ended: "end" | "error" | undefined
  status: number | undefined
}

const connect = (baseUrl: string, path: string, userId: number, listeners: Array<Listener>, requests: Set<Http.ClientRequest>) =>
  new Promise<Listener>((resolve) => {
    const listener: Listener = { userId, opened: undefined, events: [], ended: undefined, status: undefined }
    listeners.push(listener)
    const parser = createParser({
      onEvent: (event) => {
        if (event.event !== "restock") return
        const at = now()
        const data = JSON.parse(event.data) as { readonly sentAt: string }
        listener.events.push({ at, sentAt: Date.parse(data.sentAt), id: event.id ?? "" })
      }
    })
    const request = Http.get(`${baseUrl}${path}`, { agent: false, headers: { accept: "text/event-stream" } }, (response) => {
      listener.status = response.statusCode
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => {
        if (listener.opened === undefined) {
          listener.opened = now()
          resolve(listener)
        }
        parser.feed(chunk)
      })
      response.on("end", () => {
        listener.ended ??= "end"
        resolve(listener)
      })
      response.on("error", () => {
        listener.ended ??= "error"
        resolve(listener)
      })
    })
    requests.add(request)
    request.on("error", () => {
      listener.ended ??= "error"
      resolve(listener)
    })
  })

/**
 * Opens one stream per user (`pathOf(userId)`), `concurrency` connection
 * attempts at a time, and answers once every one is open (or has failed).
 */
export const openListeners = (
  baseUrl: string,
  userIds: ReadonlyArray<number>,
  pathOf: (userId: number) => string,
  concurrency = 100
): Effect.Effect<ReadonlyArray<Listener>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const listeners: Array<Listener> = []
    const requests = new Set<Http.ClientRequest>()
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const request of requests) request.destroy()
      })
    )
    yield* Effect.forEach(userIds, (userId) => Effect.promise(() => connect(baseUrl, pathOf(userId), userId, listeners, requests)), {
      concurrency,
      discard: true
    })
    return listeners
  })
