/**
 * The service below the HTTP edge, composed the way `Layers.ts` composes it
 * for MySQL + Redis, but on a bench's own database and Redis key prefix, with
 * the notifier the bench chooses, and optionally with probes that time the
 * ports the dispatch calls (to say where a round's time goes).
 */
import type { SqlClient } from "@effect/sql"
import { Effect, Exit, Layer, Stream } from "effect"
import type { DatabaseConfig } from "../../src/Config.js"
import * as RateLimiterMemory from "../../src/Dispatch/RateLimiter/Memory.js"
import { RateLimiter, type RateLimiterShape } from "../../src/Dispatch/RateLimiter/RateLimiter.js"
import * as RateLimiterRedis from "../../src/Dispatch/RateLimiter/Redis.js"
import type { Restock } from "../../src/Dispatch/Restock.js"
import * as RestockLive from "../../src/Dispatch/RestockLive.js"
import { DispatchSettings, type DispatchSettingsShape } from "../../src/Dispatch/Settings.js"
import type { StorageUnavailable } from "../../src/Domain/Errors.js"
import type { DeliveryFeed } from "../../src/Feed/Feed.js"
import * as FeedRedis from "../../src/Feed/Redis.js"
import { Notifier, type NotifierShape } from "../../src/Notifier/Notifier.js"
import { RedisConnection, type RedisConnectionShape } from "../../src/Redis.js"
import * as Database from "../../src/Repo/Database.js"
import { Repo, type RepoShape } from "../../src/Repo/Repo.js"
import * as SqlRepo from "../../src/Repo/Sql.js"
import * as StockCacheRedis from "../../src/StockCache/Redis.js"
import type { StockCache } from "../../src/StockCache/StockCache.js"
import { UnsubscribeLinks } from "../../src/Unsubscribe/Links.js"
import { now } from "./Measure.js"

/** Time spent in one kind of call: how many, how long in all, the longest. */
export class Timer {
  count = 0
  totalMs = 0
  maxMs = 0
  items = 0

  add(ms: number, items = 1): void {
    this.count += 1
    this.totalMs += ms
    this.items += items
    if (ms > this.maxMs) this.maxMs = ms
  }

  reset(): void {
    this.count = 0
    this.totalMs = 0
    this.maxMs = 0
    this.items = 0
  }

  time<A, E, R>(effect: Effect.Effect<A, E, R>, itemsOf: (a: A) => number = () => 1): Effect.Effect<A, E, R> {
    return Effect.suspend(() => {
      const start = now()
      return Effect.tap(effect, (a) => Effect.sync(() => this.add(now() - start, itemsOf(a))))
    })
  }
}

/** Where a round's time went, port by port (wall time inside each call; calls may overlap). */
export class Probe {
  /** One pull of the subscriber stream: one page query. */
  readonly pages = new Timer()
  /** One `recordDeliveries` transaction (items: rows in it). */
  readonly records = new Timer()
  /** One `RateLimiter.acquire`. */
  readonly acquires = new Timer()
  /** One `Notifier.send`. */
  readonly sends = new Timer()
  /**
   * Slot reservations made in Redis by the limiter: more than one per
   * acquire means a fiber woke too late for its slot, gave it up (unused, so
   * never too fast) and reserved another.
   */
  reservations = 0

  /** Forgets what was seen so far: a bench measures one round at a time. */
  reset(): void {
    for (const timer of [this.pages, this.records, this.acquires, this.sends]) timer.reset()
    this.reservations = 0
  }
}

const probedRepo = (repo: RepoShape, probe: Probe): RepoShape => ({
  ...repo,
  pendingSubscribers: (productId, options) =>
    Stream.fromPull(
      Effect.map(Stream.toPull(repo.pendingSubscribers(productId, options)), (pull) =>
        probe.pages.time(pull, (chunk) => chunk.length))
    ),
  recordDeliveries: (round, owner, batch) =>
    probe.records.time(repo.recordDeliveries(round, owner, batch), () => batch.deliveries.length)
})

const probedLimiter = (limiter: RateLimiterShape, probe: Probe): RateLimiterShape => ({
  ...limiter,
  acquire: probe.acquires.time(limiter.acquire)
})

const probedRedis = (redis: RedisConnectionShape, probe: Probe): RedisConnectionShape => ({
  ...redis,
  // Counted when run: a caller may build the command once and run it many times.
  runScript: (what, script, keys, args) =>
    script.sha1 === RateLimiterRedis.reserveSlotScript.sha1
      ? Effect.zipRight(Effect.sync(() => { probe.reservations += 1 }), redis.runScript(what, script, keys, args))
      : redis.runScript(what, script, keys, args)
})

export interface StackOptions {
  readonly database: DatabaseConfig
  /** The Redis connection (under the bench's key prefix). */
  readonly redis: Layer.Layer<RedisConnection, StorageUnavailable>
  readonly notifier: Layer.Layer<Notifier>
  readonly limitPerSecond: number
  /** `redis` (the default, what the service runs with Redis) or `memory` (the embedded limiter). */
  readonly limiter?: "redis" | "memory" | undefined
  readonly settings?: Partial<DispatchSettingsShape> | undefined
  readonly probe?: Probe | undefined
}

export type Stack =
  | Restock
  | Repo
  | StockCache
  | RateLimiter
  | DeliveryFeed
  | Notifier
  | SqlClient.SqlClient
  | RedisConnection

/** The real `Restock` over MySQL/MariaDB and Redis, as `services(config)` builds it, plus the connections. */
export const stack = (options: StackOptions): Layer.Layer<Stack, StorageUnavailable> => {
  const probe = options.probe
  const repo = Layer.effect(
    Repo,
    probe === undefined ? SqlRepo.make : Effect.map(SqlRepo.make, (repo) => probedRepo(repo, probe))
  ).pipe(Layer.provideMerge(Database.layer(options.database)))
  const makeLimiter = options.limiter === "memory"
    ? RateLimiterMemory.make({ limitPerSecond: options.limitPerSecond })
    : RateLimiterRedis.make({ limitPerSecond: options.limitPerSecond })
  const limiter = Layer.effect(
    RateLimiter,
    probe === undefined ? makeLimiter : Effect.map(makeLimiter, (limiter) => probedLimiter(limiter, probe))
  )
  const notifier = probe === undefined ? options.notifier : Layer.effect(
    Notifier,
    Effect.map(Notifier, (notifier): NotifierShape => {
      const start = notifier.start
      return {
        send: (n) => probe.sends.time(notifier.send(n)),
        // The callback form timed too, or the probe would turn the dispatch onto the effect path.
        start: start === undefined ? undefined : (n, done) => {
          const startedAt = now()
          return start(n, (outcome) => {
            probe.sends.add(now() - startedAt, 1)
            done(outcome)
          })
        }
      }
    })
  ).pipe(Layer.provide(options.notifier))
  const settings = Layer.succeed(DispatchSettings, { ...DispatchSettings.defaults, ...options.settings })
  const redis = probe === undefined ? options.redis : Layer.effect(
    RedisConnection,
    Effect.map(RedisConnection, (redis) => probedRedis(redis, probe))
  ).pipe(Layer.provide(options.redis))
  return RestockLive.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(
      StockCacheRedis.layer,
      limiter,
      FeedRedis.layer,
      notifier,
      settings,
      // Links are signed for every send, as the service signs them.
      UnsubscribeLinks.layer({ publicUrl: "http://127.0.0.1:8080", secret: "bench-secret" })
    )),
    Layer.provideMerge(Layer.merge(repo, redis))
  )
}

/** A sender that answers at once, in this process (through its callback, as the webhook does): what the dispatch costs without the network. */
export const instantNotifier: Layer.Layer<Notifier> = Layer.succeed(Notifier, {
  send: () => Effect.void,
  start: (_notification, done) => {
    done(Exit.void)
    return () => {}
  }
})
