/**
 * One Redis server shared by the Redis adapters of a process: a command
 * connection and a subscriber connection (a connection in pub/sub mode can
 * run nothing else), both closed when the layer's scope closes.
 *
 * Commands fail fast while Redis is down (no offline queue, no retry of a
 * command in flight when the connection drops, a bounded command timeout), so
 * a caller gets `StorageUnavailable` at once instead of hanging; the
 * connections keep reconnecting in the background, and channels subscribed
 * through `subscribe` are subscribed again once the connection is back.
 */
import { createHash } from "node:crypto"
import type * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import { Redis } from "ioredis"
import { StorageUnavailable } from "./Domain/Errors.js"

/** A Lua script run with EVALSHA, falling back to EVAL when Redis does not know it yet. */
export interface LuaScript {
  readonly lua: string
  readonly sha1: string
}

export const luaScript = (lua: string): LuaScript => ({ lua, sha1: createHash("sha1").update(lua).digest("hex") })

export interface ChannelHandlers {
  /** Called for every message on the channel, in the order Redis delivers them. */
  readonly onMessage: (message: string) => void
  /**
   * The subscriber connection dropped: messages published from now until
   * `onResubscribed` are lost.
   */
  readonly onLost?: () => void
  /** The channel is subscribed again after a reconnection. */
  readonly onResubscribed?: () => void
}

export interface ChannelSubscription {
  /** Whether the channel is subscribed on a live connection now, i.e. a message published now is received. */
  readonly isLive: Effect.Effect<boolean>
}

export interface RedisConnectionShape {
  /** Prepended to every key and channel name of restock, e.g. `restock:`. */
  readonly keyPrefix: string
  /** Runs a command on the command connection; any failure is `StorageUnavailable` naming `what`. */
  readonly use: <A>(what: string, command: (client: Redis) => Promise<A>) => Effect.Effect<A, StorageUnavailable>
  /** Runs a script (EVALSHA, or EVAL if the server does not have it cached). */
  readonly runScript: (
    what: string,
    script: LuaScript,
    keys: ReadonlyArray<string>,
    args: ReadonlyArray<string | number>
  ) => Effect.Effect<unknown, StorageUnavailable>
  /**
   * Subscribes to a channel on the shared subscriber connection. Completes
   * once Redis confirmed the SUBSCRIBE, so every message published after it
   * completes is delivered; unsubscribes when the scope closes.
   */
  readonly subscribe: (
    channel: string,
    handlers: ChannelHandlers
  ) => Effect.Effect<ChannelSubscription, StorageUnavailable, Scope.Scope>
  readonly ping: Effect.Effect<void, StorageUnavailable>
}

export class RedisConnection extends Context.Tag("restock/RedisConnection")<RedisConnection, RedisConnectionShape>() {}

export interface Options {
  /** Prepended to every key and channel. Default `restock:`. */
  readonly keyPrefix?: string | undefined
  /** How long connecting (at start and on each reconnection attempt) may take. Default 2 s. */
  readonly connectTimeoutMillis?: number | undefined
  /** How long one command may take before it fails. Default 5 s. */
  readonly commandTimeoutMillis?: number | undefined
}

export const defaultKeyPrefix = "restock:"

const connectionOptions = (options: Options) => ({
  lazyConnect: true,
  connectTimeout: options.connectTimeoutMillis ?? 2_000,
  commandTimeout: options.commandTimeoutMillis ?? 5_000,
  // Fail a command at once while disconnected, and fail (never resend) the
  // commands in flight when the connection drops: a script that adjusts stock
  // must not run twice, and a caller must not hang while Redis is down.
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  // Resubscribing is done here, so the adapters learn when it is confirmed.
  autoResubscribe: false,
  // Keep reconnecting for as long as the process lives, backing off to 1 s.
  retryStrategy: (attempt: number) => Math.min(50 * attempt, 1_000)
})

const isNoScript = (error: unknown): boolean => error instanceof Error && error.message.startsWith("NOSCRIPT")

/**
 * ioredis' wording for "Redis went away", in the words an operator reads in
 * a round's `error` and in readiness answers.
 */
const describeFailure = (cause: unknown): unknown => {
  if (!(cause instanceof Error)) return cause
  // A command in flight when the connection dropped (never resent: maxRetriesPerRequest 0).
  if (cause.name === "MaxRetriesPerRequestError") return new Error("connection lost while the command was in flight")
  // A command issued while disconnected (no offline queue).
  if (cause.message.startsWith("Stream isn't writeable")) return new Error("not connected")
  return cause
}

/**
 * Runs a script by EVALSHA, and by EVAL when the server has not cached it
 * (first use, or after a restart). The command is written to the connection
 * synchronously, before this returns: callers can rely on the order of issue.
 */
export const evalScript = async (
  client: Redis,
  script: LuaScript,
  keys: ReadonlyArray<string>,
  args: ReadonlyArray<string | number>
): Promise<unknown> => {
  try {
    return await client.evalsha(script.sha1, keys.length, ...keys, ...args)
  } catch (error) {
    if (!isNoScript(error)) throw error
    return await client.eval(script.lua, keys.length, ...keys, ...args)
  }
}

/** Connects (bounded by the connect timeout), or fails with `StorageUnavailable`. */
const connect = (url: URL, name: string, options: Options): Effect.Effect<Redis, StorageUnavailable, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const client = new Redis(url.toString(), { ...connectionOptions(options), connectionName: name })
      // Errors are reported through the commands that fail and the lost/restored
      // log lines below; without a listener ioredis prints every retry.
      client.on("error", () => {})
      return Effect.tryPromise({
        try: () => client.connect(),
        catch: (cause) => StorageUnavailable.fromCause(`cannot connect to Redis at ${url.host}`, cause)
      }).pipe(
        Effect.as(client),
        Effect.tapError(() => Effect.sync(() => client.disconnect()))
      )
    }),
    (client) => Effect.sync(() => client.disconnect())
  )

export const make = (
  url: Redacted.Redacted<URL>,
  options: Options = {}
): Effect.Effect<RedisConnectionShape, StorageUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    const keyPrefix = options.keyPrefix ?? defaultKeyPrefix
    const target = Redacted.value(url)
    const client = yield* connect(target, "restock", options)
    const subscriber = yield* connect(target, "restock-subscriber", options)
    const runtime = yield* Effect.runtime<never>()
    const runFork = Runtime.runFork(runtime)

    const use = <A>(what: string, command: (client: Redis) => Promise<A>) =>
      Effect.tryPromise({
        try: () => command(client),
        catch: (cause) => StorageUnavailable.fromCause(`Redis ${what}`, describeFailure(cause))
      })

    const runScript = (
      what: string,
      script: LuaScript,
      keys: ReadonlyArray<string>,
      args: ReadonlyArray<string | number>
    ) =>
      use(what, (redis) => evalScript(redis, script, keys, args))

    // ---- the subscriber connection: one 'message' listener routing by channel
    const handlersByChannel = new Map<string, Set<ChannelHandlers>>()
    const liveChannels = new Set<string>()
    let connectionLost = false

    subscriber.on("message", (channel: string, message: string) => {
      const handlers = handlersByChannel.get(channel)
      if (handlers === undefined) return
      for (const handler of handlers) handler.onMessage(message)
    })
    // Set before the connections are closed with the scope: closing is not losing.
    let closing = false
    yield* Effect.addFinalizer(() => Effect.sync(() => { closing = true }))

    let commandConnectionLost = false
    client.on("close", () => {
      if (closing || commandConnectionLost) return
      commandConnectionLost = true
      runFork(Effect.logWarning("Redis connection lost; commands fail until it is back"))
    })
    client.on("ready", () => {
      if (!commandConnectionLost) return
      commandConnectionLost = false
      runFork(Effect.logInfo("Redis connection restored"))
    })

    subscriber.on("close", () => {
      if (connectionLost) return // a failed reconnection attempt: already reported
      connectionLost = true
      liveChannels.clear()
      if (!closing) runFork(Effect.logWarning("Redis subscriber connection lost; reconnecting"))
      for (const handlers of handlersByChannel.values()) {
        for (const handler of handlers) handler.onLost?.()
      }
    })
    subscriber.on("ready", () => {
      if (!connectionLost) return
      connectionLost = false
      const channels = [...handlersByChannel.keys()]
      if (channels.length === 0) return
      subscriber.subscribe(...channels).then(
        () => {
          for (const channel of channels) liveChannels.add(channel)
          runFork(Effect.logInfo("Redis subscriber connection restored"))
          for (const channel of channels) {
            for (const handler of handlersByChannel.get(channel) ?? []) handler.onResubscribed?.()
          }
        },
        // The connection failed again before confirming: drop it so the next
        // reconnection tries anew.
        () => subscriber.disconnect(true)
      )
    })

    const subscribe = (channel: string, handlers: ChannelHandlers) =>
      Effect.acquireRelease(
        Effect.suspend(() => {
          let registered = handlersByChannel.get(channel)
          if (registered === undefined) {
            registered = new Set()
            handlersByChannel.set(channel, registered)
          }
          registered.add(handlers)
          return Effect.tryPromise({
            try: () => subscriber.subscribe(channel),
            catch: (cause) => StorageUnavailable.fromCause(`Redis SUBSCRIBE ${channel}`, cause)
          }).pipe(
            Effect.tap(() => Effect.sync(() => liveChannels.add(channel))),
            Effect.tapError(() => Effect.sync(() => unregister(channel, handlers)))
          )
        }),
        () => Effect.sync(() => unregister(channel, handlers))
      ).pipe(
        Effect.as<ChannelSubscription>({
          isLive: Effect.sync(() => liveChannels.has(channel) && subscriber.status === "ready")
        })
      )

    const unregister = (channel: string, handlers: ChannelHandlers) => {
      const registered = handlersByChannel.get(channel)
      if (registered === undefined) return
      registered.delete(handlers)
      if (registered.size > 0) return
      handlersByChannel.delete(channel)
      liveChannels.delete(channel)
      if (subscriber.status === "ready") subscriber.unsubscribe(channel).catch(() => {})
    }

    return {
      keyPrefix,
      use,
      runScript,
      subscribe,
      ping: Effect.asVoid(use("PING", (redis) => redis.ping()))
    } satisfies RedisConnectionShape
  })

export const layer = (url: Redacted.Redacted<URL>, options: Options = {}): Layer.Layer<RedisConnection, StorageUnavailable> =>
  Layer.scoped(RedisConnection, make(url, options))

export const layerConfig = (
  url: Config.Config<Redacted.Redacted<URL>>,
  options: Options = {}
): Layer.Layer<RedisConnection, StorageUnavailable | ConfigError.ConfigError> =>
  Layer.scoped(RedisConnection, Effect.flatMap(url, (value) => make(value, options)))

