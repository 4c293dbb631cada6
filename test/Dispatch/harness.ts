/**
 * The dispatch engine assembled for virtual-time tests: the real `Restock`
 * service and SQL `Repo` (on an SQLite file), the in-memory stock cache, rate
 * limiter and delivery feed, and a recording notifier scripted per test.
 */
import type { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import * as MemoryLimiter from "../../src/Dispatch/RateLimiter/Memory.js"
import type { RateLimiter } from "../../src/Dispatch/RateLimiter/RateLimiter.js"
import { Restock } from "../../src/Dispatch/Restock.js"
import * as RestockLive from "../../src/Dispatch/RestockLive.js"
import { DispatchSettings, type DispatchSettingsShape } from "../../src/Dispatch/Settings.js"
import { ProductId, UserId } from "../../src/Domain/Ids.js"
import type { DeliveryFeed } from "../../src/Feed/Feed.js"
import * as FeedMemory from "../../src/Feed/Memory.js"
import type { Notifier } from "../../src/Notifier/Notifier.js"
import * as Recording from "../../src/Notifier/Recording.js"
import { Repo } from "../../src/Repo/Repo.js"
import * as SqlRepo from "../../src/Repo/Sql.js"
import * as StockCacheMemory from "../../src/StockCache/Memory.js"
import { StockCache } from "../../src/StockCache/StockCache.js"
import { UnsubscribeLinks } from "../../src/Unsubscribe/Links.js"
import { layerSqlite } from "../support/Mysql.js"
import { pollPromptly } from "../support/PromptTestClock.js"

export interface EngineOptions {
  readonly limitPerSecond?: number
  readonly recording?: Recording.RecordingOptions<StockCache>
  readonly settings?: Partial<DispatchSettingsShape>
}

export type Engine =
  | Restock
  | Repo
  | StockCache
  | RateLimiter
  | Recording.Recording
  | Notifier
  | DeliveryFeed
  | UnsubscribeLinks
  | SqlClient.SqlClient

/** Everything the `Restock` service needs, without it (to start and stop it within a test). */
export const ports = (options: EngineOptions = {}): Layer.Layer<Exclude<Engine, Restock> | DispatchSettings> => {
  const storage = SqlRepo.layer.pipe(Layer.provideMerge(layerSqlite))
  const stock = StockCacheMemory.layer.pipe(Layer.provideMerge(storage))
  return Layer.mergeAll(
    // Built inside the test, on its TestClock: every virtual-time test of the engine polls promptly.
    Layer.effectDiscard(pollPromptly),
    Recording.layer(options.recording ?? {}),
    MemoryLimiter.layer({ limitPerSecond: options.limitPerSecond ?? 500 }),
    FeedMemory.layer,
    Layer.succeed(DispatchSettings, { ...DispatchSettings.defaults, ...options.settings }),
    UnsubscribeLinks.layer({ publicUrl: "http://127.0.0.1:8080", secret: "jwt-secret-for-engine-tests" })
  ).pipe(Layer.provideMerge(stock))
}

export const engine = (options: EngineOptions = {}): Layer.Layer<Engine> =>
  RestockLive.layer.pipe(Layer.provideMerge(ports(options)))

export const productId = ProductId.make(7)

/** Users 1..n, subscribed in that order to a product with the given stock. */
export const seed = (options: { readonly subscribers: number; readonly stock: number; readonly id?: ProductId }) =>
  Effect.gen(function*() {
    const repo = yield* Repo
    const stockCache = yield* StockCache
    const id = options.id ?? productId
    yield* repo.upsertProduct(id, { name: `Product ${id}`, stock: options.stock })
    yield* stockCache.set(id, options.stock)
    for (let user = 1; user <= options.subscribers; user++) yield* repo.subscribe(id, UserId.make(user))
    return id
  })

export const users = (from: number, to: number): Array<number> =>
  Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i)
