/**
 * The HTTP edge on a real socket for tests: the server bound to 127.0.0.1 on
 * a random port, over real adapters (the SQL `Repo` on a fresh SQLite file,
 * the in-memory stock cache, delivery feed and rate limiter, the real
 * `Restock` with a recording notifier), and clients that speak to it with
 * Node's `fetch` and a real event-stream parser.
 */
import { SqlClient } from "@effect/sql"
import { HttpServer } from "@effect/platform"
import { Clock, Context, Deferred, Duration, Effect, Layer, Logger, LogLevel, Queue, Ref, type Scope } from "effect"
import { createParser, type EventSourceMessage } from "eventsource-parser"
import { connect, type Socket } from "node:net"
import * as MemoryLimiter from "../../src/Dispatch/RateLimiter/Memory.js"
import * as RedisLimiter from "../../src/Dispatch/RateLimiter/Redis.js"
import { Restock } from "../../src/Dispatch/Restock.js"
import * as RestockLive from "../../src/Dispatch/RestockLive.js"
import { DispatchSettings } from "../../src/Dispatch/Settings.js"
import { AuthConfig } from "../../src/Http/Auth/Config.js"
import { serve } from "../../src/Http/Server.js"
import { SseConfig, type SseConfigShape } from "../../src/Http/Sse.js"
import { StorageUnavailable } from "../../src/Domain/Errors.js"
import { DeliveryFeed } from "../../src/Feed/Feed.js"
import * as FeedMemory from "../../src/Feed/Memory.js"
import * as FeedRedis from "../../src/Feed/Redis.js"
import type { Notifier } from "../../src/Notifier/Notifier.js"
import * as Recording from "../../src/Notifier/Recording.js"
import { Repo } from "../../src/Repo/Repo.js"
import * as SqlRepo from "../../src/Repo/Sql.js"

import * as StockCacheMemory from "../../src/StockCache/Memory.js"
import * as StockCacheRedis from "../../src/StockCache/Redis.js"
import { StockCache } from "../../src/StockCache/StockCache.js"
import * as Links from "../../src/Unsubscribe/Links.js"
import { RedisConnection } from "../../src/Redis.js"
import { layerMysql, layerSqlite } from "./Mysql.js"
import * as RedisTest from "./Redis.js"

export const adminToken = "admin-token-for-tests"
export const jwtSecret = "jwt-secret-for-tests-with-enough-entropy"

// ---------------------------------------------------------------------------
// The server

/** Where the test server listens. */
export class TestServer extends Context.Tag("test/Http/TestServer")<TestServer, {
  readonly baseUrl: string
  readonly port: number
}>() {}

/** Counts the feed subscriptions open right now: what an SSE connection holds. */
export class FeedProbe extends Context.Tag("test/Http/FeedProbe")<FeedProbe, {
  readonly open: Effect.Effect<number>
  readonly opened: Effect.Effect<number>
}>() {}

/** Wraps the real feed: every listener and subscription is counted while its scope is open. */
const countingFeed = Layer.effectContext(
  Effect.gen(function*() {
    const feed = yield* DeliveryFeed
    const open = yield* Ref.make(0)
    const opened = yield* Ref.make(0)
    const counted = Effect.acquireRelease(
      Effect.zipRight(Ref.update(opened, (n) => n + 1), Ref.update(open, (n) => n + 1)),
      () => Ref.update(open, (n) => n - 1)
    )
    return Context.make(FeedProbe, { open: Ref.get(open), opened: Ref.get(opened) }).pipe(
      Context.add(DeliveryFeed, {
        publish: feed.publish,
        listen: (userId, listener) => Effect.zipRight(counted, feed.listen(userId, listener)),
        subscribe: (userId, options) => Effect.zipRight(counted, feed.subscribe(userId, options))
      })
    )
  })
)

/**
 * Runs test code around the SSE replay's database reads, to land a delivery
 * exactly between the live subscription and the replay query, or between the
 * replay query and the live stream. Each hook runs once.
 */
export class ReplayHooks extends Context.Tag("test/Http/ReplayHooks")<ReplayHooks, {
  readonly beforeQuery: (effect: Effect.Effect<void>) => Effect.Effect<void>
  readonly afterQuery: (effect: Effect.Effect<void>) => Effect.Effect<void>
  /** How many replay queries ran. */
  readonly queries: Effect.Effect<number>
}>() {}

const hookedRepo = Layer.effectContext(
  Effect.gen(function*() {
    const repo = yield* Repo
    const before = yield* Ref.make<Effect.Effect<void>>(Effect.void)
    const after = yield* Ref.make<Effect.Effect<void>>(Effect.void)
    const queries = yield* Ref.make(0)
    const once = (hook: Ref.Ref<Effect.Effect<void>>) => Effect.flatten(Ref.getAndSet(hook, Effect.void))
    return Context.make(ReplayHooks, {
      beforeQuery: (effect) => Ref.set(before, effect),
      afterQuery: (effect) => Ref.set(after, effect),
      queries: Ref.get(queries)
    }).pipe(Context.add(Repo, {
      ...repo,
      deliveriesOfUser: (userId, options) =>
        once(before).pipe(
          Effect.zipRight(repo.deliveriesOfUser(userId, options)),
          Effect.tap(() => Ref.update(queries, (n) => n + 1)),
          Effect.tap(() => once(after))
        )
    }))
  })
)

/**
 * Sets where the unsubscribe links point: the server's address, known only
 * once it listens, after the dispatch that signs the links was built (a
 * deployment names it up front, in `PUBLIC_URL`).
 */
class PublicAddress extends Context.Tag("test/Http/PublicAddress")<PublicAddress, {
  readonly set: (baseUrl: string) => void
}>() {}

/** The real links, signed with the test's `jwtSecret`, under whatever base was set last. */
const linksAtServer = Layer.effectContext(Effect.sync(() => {
  let links = Links.make({ publicUrl: "http://127.0.0.1:0", secret: jwtSecret })
  return Context.make(PublicAddress, {
    set: (baseUrl) => {
      links = Links.make({ publicUrl: baseUrl, secret: jwtSecret })
    }
  }).pipe(Context.add(Links.UnsubscribeLinks, {
    urlFor: (productId, userId) => Effect.suspend(() => links.urlFor(productId, userId)),
    linkOf: (productId, userId) => links.linkOf(productId, userId),
    verify: (token) => Effect.suspend(() => links.verify(token))
  }))
}))

/** How the readiness probes of the test's database and stock cache answer. */
export type Health = "up" | "failing" | "hanging"

/** Takes the database or the stock cache "down" for readiness, without touching their data paths. */
export class Outage extends Context.Tag("test/Http/Outage")<Outage, {
  readonly database: (health: Health) => Effect.Effect<void>
  readonly stockCache: (health: Health) => Effect.Effect<void>
}>() {}

const probeAs = (health: Ref.Ref<Health>, ping: Effect.Effect<void, StorageUnavailable>) =>
  Effect.flatMap(Ref.get(health), (state) =>
    state === "up"
      ? ping
      : state === "failing"
      ? Effect.fail(new StorageUnavailable({ message: "connection refused (test outage)" }))
      : Effect.never)

const outages = Layer.effectContext(
  Effect.gen(function*() {
    const repo = yield* Repo
    const stockCache = yield* StockCache
    const database = yield* Ref.make<Health>("up")
    const cache = yield* Ref.make<Health>("up")
    return Context.make(Outage, { database: (h) => Ref.set(database, h), stockCache: (h) => Ref.set(cache, h) }).pipe(
      Context.add(Repo, { ...repo, ping: probeAs(database, repo.ping) }),
      Context.add(StockCache, { ...stockCache, ping: probeAs(cache, stockCache.ping) })
    )
  })
)

export interface ServerOptions {
  /**
   * What the ports run on: `embedded` (default) is SQLite and the in-process
   * stock cache, limiter and fan-out; `mysql-redis` is MariaDB and Redis, as
   * a deployment of several instances runs.
   */
  readonly backing?: "embedded" | "mysql-redis"
  readonly sse?: Partial<SseConfigShape>
  readonly recording?: Recording.RecordingOptions
  readonly limitPerSecond?: number
  /** The `PUBLIC_URL` of the links, `{port}` replaced by the server's port (default: `http://127.0.0.1:{port}`). */
  readonly publicUrl?: string
}

export type Services =
  | TestServer
  | FeedProbe
  | ReplayHooks
  | Outage
  | Repo
  | StockCache
  | DeliveryFeed
  | Restock
  | Recording.Recording
  | Notifier
  | Links.UnsubscribeLinks
  | SqlClient.SqlClient

/** The storage, stock cache, limiter and fan-out, embedded: SQLite and in-process. */
const embeddedAdapters = (limitPerSecond: number) => {
  const storage = hookedRepo.pipe(Layer.provideMerge(SqlRepo.layer.pipe(Layer.provideMerge(layerSqlite))))
  return Layer.mergeAll(MemoryLimiter.layer({ limitPerSecond }), FeedMemory.layer).pipe(
    Layer.provideMerge(StockCacheMemory.layer.pipe(Layer.provideMerge(storage)))
  )
}

/** The same on MariaDB and Redis (under the test's own key prefix), as a deployment of several instances runs. */
const redisAdapters = (limitPerSecond: number) => {
  const storage = hookedRepo.pipe(Layer.provideMerge(SqlRepo.layer.pipe(Layer.provideMerge(layerMysql))))
  return Layer.mergeAll(RedisLimiter.layer({ limitPerSecond }), FeedRedis.layer).pipe(
    Layer.provideMerge(StockCacheRedis.layer.pipe(Layer.provideMerge(storage))),
    Layer.provideMerge(RedisTest.layer),
    Layer.orDie
  )
}

type Adapters = Layer.Layer.Success<ReturnType<typeof embeddedAdapters>>

/** The server over the given adapters, with the real `Restock` and a recording notifier. */
const serverOn = <A>(adapters: Layer.Layer<A | Adapters>, options: ServerOptions): Layer.Layer<Services | A> => {
  const engine = Layer.mergeAll(
    Recording.layer(options.recording ?? {}),
    Layer.succeed(DispatchSettings, DispatchSettings.defaults),
    linksAtServer
  ).pipe(Layer.provideMerge(adapters))
  const ports = Layer.mergeAll(countingFeed, outages).pipe(
    Layer.provideMerge(RestockLive.layer.pipe(Layer.provideMerge(engine)))
  )
  const address = Layer.effect(
    TestServer,
    Effect.zipWith(HttpServer.HttpServer, PublicAddress, (server, publicAddress) => {
      const port = server.address._tag === "TcpAddress" ? server.address.port : 0
      publicAddress.set((options.publicUrl ?? "http://127.0.0.1:{port}").replace("{port}", String(port)))
      return { baseUrl: `http://127.0.0.1:${port}`, port }
    })
  )
  const sse = Layer.succeed(SseConfig, { ...SseConfig.defaultValue(), ...options.sse })
  const edge = serve({ host: "127.0.0.1", port: 0, shutdownGrace: "1 second" }).pipe(
    Layer.provide(AuthConfig.layer({ adminToken, jwtSecret })),
    Layer.provide(sse)
  )
  return address.pipe(
    Layer.provide(edge),
    Layer.provideMerge(ports),
    // Access logs of every request would drown the test output.
    Layer.provide(Logger.minimumLogLevel(LogLevel.Warning)),
    Layer.orDie
  )
}

/**
 * A fresh server and database per use. Built in the caller's context: under
 * `it.effect` the server runs on `TestClock`, under `it.live` on the real one.
 */
export const layerServer = (options: ServerOptions = {}): Layer.Layer<Services> =>
  options.backing === "mysql-redis"
    ? serverOn(redisAdapters(options.limitPerSecond ?? 500), options)
    : serverOn(embeddedAdapters(options.limitPerSecond ?? 500), options)

/** The server on MariaDB and Redis, with the Redis connection and key prefix it uses (to act as an order system). */
export const layerServerOnRedis = (
  options: Omit<ServerOptions, "backing"> = {}
): Layer.Layer<Services | RedisConnection | RedisTest.TestPrefix> =>
  serverOn(redisAdapters(options.limitPerSecond ?? 500), options)

// ---------------------------------------------------------------------------
// Plain requests

export interface Reply {
  readonly status: number
  readonly headers: Headers
  /** The body parsed as JSON, or `undefined` when it is empty. */
  readonly body: any
  readonly text: string
}

export interface RequestOptions {
  readonly token?: string | undefined
  /** Sent as JSON; a string is sent as is. */
  readonly body?: unknown
  readonly headers?: Record<string, string> | undefined
}

export const request = (method: string, path: string, options: RequestOptions = {}) =>
  Effect.flatMap(TestServer, (server) =>
    Effect.promise(async (): Promise<Reply> => {
      const headers: Record<string, string> = {}
      if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
      if (options.body !== undefined) headers["content-type"] = "application/json"
      Object.assign(headers, options.headers)
      const response = await fetch(server.baseUrl + path, {
        method,
        headers,
        body: options.body === undefined
          ? undefined
          : typeof options.body === "string"
          ? options.body
          : JSON.stringify(options.body)
      })
      const text = await response.text()
      return {
        status: response.status,
        headers: response.headers,
        text,
        body: text === "" ? undefined : safeJson(text)
      }
    }))

const safeJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

export const asAdmin = { token: adminToken } as const

/** Mints a user token through the API, as a tool would. */
export const userToken = (userId: number, ttlSeconds?: number) =>
  Effect.map(
    request("POST", `/admin/users/${userId}/token`, {
      ...asAdmin,
      body: ttlSeconds === undefined ? undefined : { ttlSeconds }
    }),
    (reply) => {
      if (reply.status !== 200) throw new Error(`minting a token failed: ${reply.status} ${reply.text}`)
      return reply.body.token as string
    }
  )

// ---------------------------------------------------------------------------
// Event streams

export interface StreamClient {
  readonly status: number
  readonly headers: Headers
  /** The body of a non-200 answer. */
  readonly errorBody: any
  /** Events as the parser reads them, in order. */
  readonly events: Queue.Dequeue<EventSourceMessage>
  /** Comment lines (`ping`), in order. */
  readonly comments: Queue.Dequeue<string>
  /** Completes when the server ends the stream (or the connection breaks). */
  readonly ended: Deferred.Deferred<"end" | "error">
  /** The next `n` events, failing the test if they do not come within `within`. */
  readonly take: (n: number, within?: Duration.DurationInput) => Effect.Effect<Array<EventSourceMessage>>
  /** Whatever arrived so far, without waiting. */
  readonly drain: Effect.Effect<Array<EventSourceMessage>>
}

export interface StreamOptions {
  readonly token?: string | undefined
  readonly headers?: Record<string, string> | undefined
}

/**
 * A client that sends its request for an event stream, then never reads:
 * what the server writes piles up in the socket until the server drops it.
 * Destroyed when the scope closes; `resume()` it to read what it was sent.
 */
export const openStalledStream = (path: string, token: string): Effect.Effect<Socket, never, TestServer | Scope.Scope> =>
  Effect.gen(function*() {
    const server = yield* TestServer
    const stalled = connect({ host: "127.0.0.1", port: server.port })
    stalled.pause()
    stalled.on("error", () => {})
    stalled.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n\r\n`)
    yield* Effect.addFinalizer(() => Effect.sync(() => stalled.destroy()))
    return stalled
  })

/**
 * Opens an event stream over a real HTTP connection and parses it with
 * `eventsource-parser`. Closed (the request aborted) when the scope closes.
 * Waits go through the live clock: the server may be running on `TestClock`.
 */
export const openStream = (path: string, options: StreamOptions = {}): Effect.Effect<
  StreamClient,
  never,
  TestServer | Scope.Scope
> =>
  Effect.gen(function*() {
    const server = yield* TestServer
    const events = yield* Queue.unbounded<EventSourceMessage>()
    const comments = yield* Queue.unbounded<string>()
    const ended = yield* Deferred.make<"end" | "error">()
    const abort = new AbortController()
    yield* Effect.addFinalizer(() => Effect.sync(() => abort.abort()))
    const headers: Record<string, string> = { accept: "text/event-stream", ...options.headers }
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`
    const response = yield* Effect.promise(() =>
      fetch(server.baseUrl + path, { headers, signal: abort.signal })
    )
    if (response.status !== 200) {
      const text = yield* Effect.promise(() => response.text())
      yield* Deferred.succeed(ended, "end")
      return makeClient(response, safeJson(text), events, comments, ended)
    }
    const parser = createParser({
      onEvent: (event) => Queue.unsafeOffer(events, event),
      onComment: (comment) => Queue.unsafeOffer(comments, comment.trim())
    })
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
    yield* Effect.promise(async () => {
      try {
        while (true) {
          const { done, value } = await reader.read()
          if (done) return "end" as const
          parser.feed(value)
        }
      } catch {
        return "error" as const
      }
    }).pipe(
      Effect.flatMap((how) => Deferred.succeed(ended, how)),
      Effect.forkScoped
    )
    return makeClient(response, undefined, events, comments, ended)
  })

const makeClient = (
  response: Response,
  errorBody: unknown,
  events: Queue.Queue<EventSourceMessage>,
  comments: Queue.Queue<string>,
  ended: Deferred.Deferred<"end" | "error">
): StreamClient => ({
  status: response.status,
  headers: response.headers,
  errorBody,
  events,
  comments,
  ended,
  take: (n, within = "5 seconds") =>
    Queue.takeBetween(events, n, n).pipe(
      Effect.map((chunk) => Array.from(chunk)),
      Effect.timeoutFail({
        duration: within,
        onTimeout: () => new Error(`expected ${n} events within ${Duration.format(Duration.decode(within))}`)
      }),
      Effect.orDie,
      Effect.withClock(liveClock)
    ),
  drain: Effect.map(Queue.takeAll(events), (chunk) => Array.from(chunk))
})

const liveClock = Clock.make()

/** Waits, on the real clock, until `check` holds (polling), or dies saying what was expected. */
export const eventually = <A, R>(
  what: string,
  probe: Effect.Effect<A, never, R>,
  check: (value: A) => boolean,
  within: Duration.DurationInput = "5 seconds"
): Effect.Effect<A, never, R> =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(within)
    while (true) {
      const value = yield* probe
      if (check(value)) return value
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for ${what}; last: ${String(value)}`))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 10)))
    }
  })

// ---------------------------------------------------------------------------
// The database, to prove a refused request changed nothing

const tables = [
  "product",
  "product_user_notification",
  "product_notification_history",
  "product_user_notification_history"
] as const

/** Every row of every table, in id order. */
export const databaseSnapshot = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const snapshot: Record<string, ReadonlyArray<unknown>> = {}
  for (const table of tables) snapshot[table] = yield* sql.unsafe(`SELECT * FROM ${table} ORDER BY id`)
  return snapshot
}).pipe(Effect.orDie)
