/**
 * A real Redis for tests: `REDIS_URL` when set, else the local default port
 * when a server answers there, else a testcontainers Redis 7. When none is
 * possible the test fails saying what to start; it never passes silently.
 *
 * Each test gets its own random key prefix, and every key under it is
 * deleted when the test's scope closes.
 */
import { randomUUID } from "node:crypto"
import * as net from "node:net"
import { Context, Effect, Layer, Redacted, type Scope } from "effect"
import { Redis } from "ioredis"
import * as RedisConnection from "../../src/Redis.js"

const localDefault = "redis://127.0.0.1:6379"

const answers = async (url: string): Promise<boolean> => {
  const probe = new Redis(url, { lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 0, retryStrategy: () => null })
  probe.on("error", () => {})
  try {
    await probe.connect()
    return (await probe.ping()) === "PONG"
  } catch {
    return false
  } finally {
    probe.disconnect()
  }
}

const startContainer = async (): Promise<string> => {
  const { GenericContainer, Wait } = await import("testcontainers")
  const container = await new GenericContainer("redis:7-alpine")
    .withExposedPorts(6379)
    .withWaitStrategy(Wait.forLogMessage("Ready to accept connections"))
    .start()
  // Removed by the testcontainers reaper when the test process exits.
  return `redis://${container.getHost()}:${container.getMappedPort(6379)}`
}

let resolved: Promise<string> | undefined

const resolveUrl = async (): Promise<string> => {
  const fromEnv = process.env.REDIS_URL?.trim()
  if (fromEnv) {
    if (await answers(fromEnv)) return fromEnv
    throw new Error(`REDIS_URL=${fromEnv} does not answer: start that Redis or unset REDIS_URL`)
  }
  if (await answers(localDefault)) return localDefault
  try {
    return await startContainer()
  } catch (cause) {
    throw new Error(
      "These tests need Redis 7: start one on 127.0.0.1:6379 (e.g. `docker run -p 6379:6379 redis:7`), " +
        `set REDIS_URL, or make Docker available for testcontainers (${String(cause)})`
    )
  }
}

/** The Redis the tests use, found once per test file. Dies (fails the test) when there is none. */
export const url: Effect.Effect<Redacted.Redacted<URL>> = Effect.promise(() => (resolved ??= resolveUrl())).pipe(
  Effect.map((raw) => Redacted.make(new URL(raw)))
)

/** A fresh key prefix, unique to one test. */
export const randomPrefix = (): string => `restock-test:${randomUUID().slice(0, 8)}:`

/** A plain client on the test Redis, closed with the scope: for raw commands (an "order system"). */
export const rawClient: Effect.Effect<Redis, never, Scope.Scope> = Effect.acquireRelease(
  Effect.flatMap(url, (u) =>
    Effect.promise(async () => {
      const client = new Redis(Redacted.value(u).toString(), { lazyConnect: true })
      await client.connect()
      return client
    })
  ),
  (client) => Effect.promise(() => client.quit().catch(() => "OK"))
)

/** Deletes every key under `prefix` when the scope closes. */
export const cleanUpOnClose = (prefix: string): Effect.Effect<void, never, Scope.Scope> =>
  Effect.addFinalizer(() =>
    Effect.scoped(
      Effect.flatMap(rawClient, (client) =>
        Effect.promise(async () => {
          let cursor = "0"
          do {
            const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000)
            if (keys.length > 0) await client.del(...keys)
            cursor = next
          } while (cursor !== "0")
        })
      )
    )
  )

/**
 * A connection to the test Redis under `prefix`, as another process would
 * open it: two of these with one prefix stand for two processes.
 */
export const connection = (prefix: string): Effect.Effect<RedisConnection.RedisConnectionShape, never, Scope.Scope> =>
  Effect.flatMap(url, (u) => RedisConnection.make(u, { keyPrefix: prefix })).pipe(Effect.orDie)

/** The key prefix of the current test's `layer`. */
export class TestPrefix extends Context.Tag("test/Redis/TestPrefix")<TestPrefix, string>() {}

/** `RedisConnection` under a fresh prefix whose keys are deleted when the layer is released. */
export const layer: Layer.Layer<RedisConnection.RedisConnection | TestPrefix> = Layer.scopedContext(
  Effect.gen(function*() {
    const prefix = randomPrefix()
    yield* cleanUpOnClose(prefix)
    const redis = yield* connection(prefix)
    return Context.make(TestPrefix, prefix).pipe(Context.add(RedisConnection.RedisConnection, redis))
  })
)

/**
 * A TCP proxy in front of the test Redis that can cut every connection and
 * refuse new ones (`cut`) until `restore`: Redis going away and coming back,
 * as one process sees it, without touching the shared server.
 */
export interface RedisProxy {
  readonly url: Redacted.Redacted<URL>
  readonly cut: Effect.Effect<void>
  readonly restore: Effect.Effect<void>
}

export const proxy: Effect.Effect<RedisProxy, never, Scope.Scope> = Effect.gen(function*() {
  const upstream = Redacted.value(yield* url)
  let up = true
  const sockets = new Set<net.Socket>()
  const track = (socket: net.Socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    socket.on("error", () => socket.destroy())
  }
  const server = net.createServer((client) => {
    track(client)
    if (!up) return client.destroy()
    const target = net.connect(Number(upstream.port || 6379), upstream.hostname)
    track(target)
    client.pipe(target).pipe(client)
    client.on("close", () => target.destroy())
    target.on("close", () => client.destroy())
  })
  const port = yield* Effect.acquireRelease(
    Effect.async<number>((resume) => {
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as net.AddressInfo).port)))
    }),
    () =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  )
  return {
    url: Redacted.make(new URL(`redis://127.0.0.1:${port}`)),
    cut: Effect.sync(() => {
      up = false
      for (const socket of sockets) socket.destroy()
    }),
    restore: Effect.sync(() => {
      up = true
    })
  }
})
