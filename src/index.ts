/**
 * restock as a library: the services another Effect program composes, their
 * layers, and the domain types and errors.
 *
 *     import { Restock, Layers, Notifier } from "restock"
 */
export * from "./Domain/index.js"

// The services (ports) and what they answer.
export { Restock, type RestockShape } from "./Dispatch/Restock.js"
export { Repo, type RepoShape } from "./Repo/Repo.js"
export { StockCache, type StockCacheShape, type StockWatch } from "./StockCache/StockCache.js"
export { Notifier, type NotifierShape, SendFailed } from "./Notifier/Notifier.js"
export { DeliveryFeed, type DeliveryFeedShape, FeedOverflow } from "./Feed/Feed.js"
export { RateLimiter, type RateLimiterShape } from "./Dispatch/RateLimiter/RateLimiter.js"
export { DispatchSettings, type DispatchSettingsShape } from "./Dispatch/Settings.js"
export {
  UnsubscribeLinks,
  type UnsubscribeLinksOptions,
  type UnsubscribeLinksShape
} from "./Unsubscribe/Links.js"
export type { UnsubscribeTarget } from "./Unsubscribe/Token.js"

// Their layers: one module per implementation.
export * as RestockLive from "./Dispatch/RestockLive.js"
export * as Database from "./Repo/Database.js"
export * as SqlRepo from "./Repo/Sql.js"
export * as StockCacheMemory from "./StockCache/Memory.js"
export * as StockCacheRedis from "./StockCache/Redis.js"
export * as RateLimiterMemory from "./Dispatch/RateLimiter/Memory.js"
export * as RateLimiterRedis from "./Dispatch/RateLimiter/Redis.js"
export * as FeedMemory from "./Feed/Memory.js"
export * as FeedRedis from "./Feed/Redis.js"
export * as WebhookNotifier from "./Notifier/Webhook.js"
// NOTIFIER=sse: the feed delivers, after the records commit.
export * as SseNotifier from "./Notifier/ViaFeed.js"
export * as RecordingNotifier from "./Notifier/Recording.js"
export * as Redis from "./Redis.js"
// The history retention (HISTORY_RETENTION): `Layers.services` runs it when configured.
export * as Pruner from "./Retention/Pruner.js"

// Configuration and the composition `main.ts` uses.
export * as Config from "./Config.js"
export * as Layers from "./Layers.js"
export * as HttpServer from "./Http/Server.js"

// Observability: the Prometheus registry behind `/metrics`, and OTLP tracing.
export * as Prometheus from "./Observability/Prometheus.js"
export * as Tracing from "./Observability/Tracing.js"
export * as Metrics from "./Observability/Metrics.js"

// The HTTP API, and a typed client of it for programs that talk to restock over HTTP.
export { Api } from "./Http/Api.js"
export * as RestockClient from "./Http/Client.js"
