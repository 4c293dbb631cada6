/**
 * A TCP proxy on 127.0.0.1 in front of any server (Redis, MariaDB): a test
 * points a service at the proxy and takes the server "away" for that service
 * alone, without touching the shared server the other suites use.
 *
 * - `cut`: every open connection is reset and new ones are closed at once, as
 *   a server that went down (clients fail fast and reconnect in a loop).
 * - `stall`: connections stay open but nothing goes through either way, as a
 *   network partition (clients see no error, only silence: what timeouts are for).
 * - `restore`: new connections go through again (stalled ones resume).
 *
 * Closed, with every connection, when the scope closes.
 */
import { Effect, type Scope } from "effect"
import * as net from "node:net"

export type ProxyState = "up" | "cut" | "stalled"

export interface TcpProxy {
  /** The port on 127.0.0.1 to connect to instead of the server. */
  readonly port: number
  readonly state: () => ProxyState
  readonly cut: Effect.Effect<void>
  readonly stall: Effect.Effect<void>
  readonly restore: Effect.Effect<void>
  /** Connections accepted so far (each one a client connection). */
  readonly connections: () => number
}

interface Pair {
  readonly client: net.Socket
  readonly server: net.Socket
}

export const start = (upstream: { readonly host: string; readonly port: number }): Effect.Effect<TcpProxy, never, Scope.Scope> =>
  Effect.gen(function*() {
    let state: ProxyState = "up"
    let accepted = 0
    const pairs = new Set<Pair>()
    const loose = new Set<net.Socket>()

    const pause = (pair: Pair) => {
      pair.client.unpipe(pair.server)
      pair.server.unpipe(pair.client)
      pair.client.pause()
      pair.server.pause()
    }
    const resume = (pair: Pair) => {
      pair.client.pipe(pair.server)
      pair.server.pipe(pair.client)
    }

    const server = net.createServer((client) => {
      accepted++
      client.on("error", () => client.destroy())
      if (state === "cut") {
        client.resetAndDestroy()
        return
      }
      const target = net.connect(upstream.port, upstream.host)
      target.on("error", () => target.destroy())
      const pair: Pair = { client, server: target }
      pairs.add(pair)
      const close = () => {
        pairs.delete(pair)
        client.destroy()
        target.destroy()
      }
      client.on("close", close)
      target.on("close", close)
      if (state === "up") resume(pair)
      else pause(pair)
    })
    server.on("connection", (socket) => {
      loose.add(socket)
      socket.on("close", () => loose.delete(socket))
    })

    const port = yield* Effect.acquireRelease(
      Effect.async<number>((resumeWith) => {
        server.listen(0, "127.0.0.1", () => resumeWith(Effect.succeed((server.address() as net.AddressInfo).port)))
      }),
      () =>
        Effect.async<void>((resumeWith) => {
          for (const pair of pairs) {
            pair.client.destroy()
            pair.server.destroy()
          }
          for (const socket of loose) socket.destroy()
          server.close(() => resumeWith(Effect.void))
        })
    )

    return {
      port,
      state: () => state,
      connections: () => accepted,
      cut: Effect.sync(() => {
        state = "cut"
        for (const pair of pairs) {
          pair.client.resetAndDestroy()
          pair.server.destroy()
        }
      }),
      stall: Effect.sync(() => {
        state = "stalled"
        for (const pair of pairs) pause(pair)
      }),
      restore: Effect.sync(() => {
        const wasStalled = state === "stalled"
        state = "up"
        if (wasStalled) for (const pair of pairs) resume(pair)
      })
    } satisfies TcpProxy
  })
