/**
 * Many SSE listeners, held by a child process (`listeners-process.ts`):
 * opened all at once (a reconnect storm's shape), then asked what they
 * received. The child is killed when the scope closes.
 */
import { Deferred, Effect, type Scope } from "effect"
import { fork } from "node:child_process"
import { fileURLToPath } from "node:url"

export type ListenerRequest =
  | { readonly type: "open"; readonly urls: ReadonlyArray<string>; readonly concurrency: number }
  | { readonly type: "report" }
  | { readonly type: "close" }

export type ListenerResponse =
  | { readonly type: "ready" }
  | { readonly type: "opened"; readonly open: number; readonly seconds: number }
  | {
    readonly type: "report"
    /** Listeners that received at least one `restock` event. */
    readonly withEvent: number
    /** Listeners that received more than one. */
    readonly moreThanOnce: number
    /** Streams the server ended or broke. */
    readonly ended: number
    /** Receipt − `sentAt` of every event, ms. */
    readonly latencies: ReadonlyArray<number>
  }

const script = fileURLToPath(new URL("./listeners-process.ts", import.meta.url))

export interface RemoteListeners {
  /** Opens one stream per URL, `concurrency` connection attempts at a time; answers how many opened and how long it took. */
  readonly open: (urls: ReadonlyArray<string>, concurrency: number) => Effect.Effect<{ readonly open: number; readonly seconds: number }>
  readonly report: Effect.Effect<Extract<ListenerResponse, { type: "report" }>>
}

export const start: Effect.Effect<RemoteListeners, Error, Scope.Scope> = Effect.gen(function*() {
  const ready = yield* Deferred.make<void, Error>()
  let waiting: ((response: ListenerResponse) => void) | undefined
  const child = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const child = fork(script, [], { execArgv: ["--import", "tsx", "--max-old-space-size=4096"], stdio: "inherit" })
      child.on("message", (response: ListenerResponse) => {
        if (response.type === "ready") Deferred.unsafeDone(ready, Effect.void)
        else waiting?.(response)
      })
      child.on("exit", (code) => Deferred.unsafeDone(ready, Effect.fail(new Error(`the listeners' process exited (${code})`))))
      return child
    }),
    (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
  )
  yield* Deferred.await(ready).pipe(Effect.timeout("30 seconds"), Effect.mapError((e) => new Error(String(e))))

  const ask = (request: ListenerRequest) =>
    Effect.async<ListenerResponse>((resume) => {
      waiting = (response) => {
        waiting = undefined
        resume(Effect.succeed(response))
      }
      child.send(request)
    })

  return {
    open: (urls, concurrency) =>
      Effect.map(ask({ type: "open", urls, concurrency }), (response) =>
        response.type === "opened" ? response : { open: 0, seconds: Number.NaN }),
    report: Effect.flatMap(ask({ type: "report" }), (response) =>
      response.type === "report" ? Effect.succeed(response) : Effect.dieMessage("unexpected answer"))
  }
})
