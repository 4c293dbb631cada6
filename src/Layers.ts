/**
 * The one place that knows every adapter: composes the service from its
 * configuration — embedded (SQLite + in-process stock, limiter and fan-out)
 * or shared (MySQL/MariaDB + Redis), SSE or webhook notifier.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { randomBytes } from "node:crypto"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type { AppConfig } from "./Config.js"
import * as RateLimiterMemory from "./Dispatch/RateLimiter/Memory.js"
import type { RateLimiter } from "./Dispatch/RateLimiter/RateLimiter.js"
import * as RateLimiterRedis from "./Dispatch/RateLimiter/Redis.js"
import type { Restock } from "./Dispatch/Restock.js"
import * as RestockLive from "./Dispatch/RestockLive.js"
import { DispatchSettings } from "./Dispatch/Settings.js"
import { StorageUnavailable } from "./Domain/Errors.js"
import type { DeliveryFeed } from "./Feed/Feed.js"
import * as FeedMemory from "./Feed/Memory.js"
import * as FeedRedis from "./Feed/Redis.js"
import type { Notifier } from "./Notifier/Notifier.js"
import * as ViaFeedNotifier from "./Notifier/ViaFeed.js"
import * as WebhookNotifier from "./Notifier/Webhook.js"
import * as Redis from "./Redis.js"
import * as Database from "./Repo/Database.js"
import type { Repo } from "./Repo/Repo.js"
import * as Pruner from "./Retention/Pruner.js"
import * as SqlRepo from "./Repo/Sql.js"
import * as StockCacheMemory from "./StockCache/Memory.js"
import * as StockCacheRedis from "./StockCache/Redis.js"
import type { StockCache } from "./StockCache/StockCache.js"
import { UnsubscribeLinks } from "./Unsubscribe/Links.js"

/** What the service runs on, below the HTTP edge. */
export type Services =
  | Restock
  | Repo
  | StockCache
  | RateLimiter
  | DeliveryFeed
  | Notifier
  | UnsubscribeLinks
  | SqlClient.SqlClient

type Shared = StockCache | RateLimiter | DeliveryFeed

/** Stock, rate limit and fan-out in this process: the embedded mode, one instance. */
const inProcess = (config: AppConfig): Layer.Layer<Shared, never, Repo> =>
  Layer.mergeAll(
    StockCacheMemory.layer,
    RateLimiterMemory.layer({ limitPerSecond: config.rateLimitPerSecond }),
    FeedMemory.layer
  )

/** Stock, rate limit and fan-out in Redis: shared by every instance. */
const inRedis = (config: AppConfig, url: Redacted.Redacted<URL>) =>
  Layer.mergeAll(
    StockCacheRedis.layer,
    RateLimiterRedis.layer({ limitPerSecond: config.rateLimitPerSecond }),
    FeedRedis.layer
  ).pipe(Layer.provide(redisConnection(url, config.redisKeyPrefix)))

/**
 * The Redis connection, retried for a few seconds at start-up (a server still
 * starting), then failing with one error that names `REDIS_URL`.
 */
const redisConnection = (url: Redacted.Redacted<URL>, keyPrefix: string) =>
  Redis.layer(url, { keyPrefix }).pipe(
    Layer.retry(Schedule.exponential("200 millis").pipe(Schedule.upTo("5 seconds"))),
    Layer.mapError((error) => new StorageUnavailable({ message: `REDIS_URL (${Redacted.value(url).host}): ${error.message}` }))
  )

/**
 * The links of every notification, signed with `JWT_SECRET`. `main.ts` always
 * passes the secret the edge verifies user tokens with. A program that sets
 * none gets a random one, and its links stop working when it exits.
 */
const unsubscribeLinks = (config: AppConfig): Layer.Layer<UnsubscribeLinks> =>
  Option.match(config.jwtSecret, {
    onSome: (secret) => UnsubscribeLinks.layer({ publicUrl: config.publicUrl, secret }),
    onNone: () =>
      Layer.unwrapEffect(Effect.as(
        Effect.logWarning("JWT_SECRET is not set: unsubscribe links are signed with a random secret and die with this process"),
        UnsubscribeLinks.layer({ publicUrl: config.publicUrl, secret: randomBytes(32).toString("base64url") })
      ))
  })

const notifier = (config: AppConfig): Layer.Layer<Notifier> =>
  config.notifier._tag === "Webhook" ? WebhookNotifier.layer({ url: config.notifier.url }) : ViaFeedNotifier.layer

/** The service on its configuration, with the notifier it names (`NOTIFIER`). */
export const services = (config: AppConfig): Layer.Layer<Services, StorageUnavailable> =>
  servicesWith(config, notifier(config))

/** The service on its configuration, sending through the given `Notifier`. */
export const servicesWith = (
  config: AppConfig,
  notifierLayer: Layer.Layer<Notifier>
): Layer.Layer<Services, StorageUnavailable> => {
  const storage = SqlRepo.layer.pipe(Layer.provideMerge(Database.layer(config.database)))
  const shared: Layer.Layer<Shared, StorageUnavailable, Repo> = Option.match(config.redisUrl, {
    onNone: () => inProcess(config),
    onSome: (url) => inRedis(config, url)
  })
  const settings = Layer.succeed(DispatchSettings, {
    ...DispatchSettings.defaults,
    retries: config.notifierRetries,
    leaseDuration: Duration.seconds(config.leaseSeconds),
    sendWindow: Option.getOrNull(config.sendWindow)
  })
  // HISTORY_RETENTION set: the pruner runs in the background of every instance (they share one lease).
  const retention = Option.match(config.historyRetention, {
    onNone: () => Layer.empty,
    onSome: (retention) => Layer.discard(Pruner.layer(Pruner.settingsFor(retention)))
  })
  return Layer.merge(
    RestockLive.layer.pipe(Layer.provideMerge(Layer.mergeAll(shared, notifierLayer, settings, unsubscribeLinks(config)))),
    retention
  ).pipe(Layer.provideMerge(storage))
}
