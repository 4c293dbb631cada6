import { layer } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Schedule } from "effect"
import { expect } from "vitest"
import { StorageUnavailable } from "../../src/Domain/Errors.js"
import * as RedisConnection from "../../src/Redis.js"
import * as SqlRepo from "../../src/Repo/Sql.js"
import * as RedisStockCache from "../../src/StockCache/Redis.js"
import {
  databaseReaches,
  newProduct,
  productInDatabase,
  stockCacheContract
} from "../contracts/StockCache.contract.js"
import * as TestDatabase from "../support/Mysql.js"
import * as TestRedis from "../support/Redis.js"

/** The Redis cache as one process runs it, on its own connection under `prefix`. */
export const cacheOn = (redis: RedisConnection.RedisConnectionShape) =>
  RedisStockCache.make.pipe(Effect.provideService(RedisConnection.RedisConnection, redis), Effect.orDie)

stockCacheContract("Redis, one connection per process, over MariaDB", {
  layer: SqlRepo.layer.pipe(Layer.provide(TestDatabase.layerMysql)),
  makeCaches: (processes) =>
    Effect.gen(function*() {
      const prefix = TestRedis.randomPrefix()
      yield* TestRedis.cleanUpOnClose(prefix)
      return yield* Effect.forEach(Array.from({ length: processes }), () =>
        Effect.flatMap(TestRedis.connection(prefix), cacheOn))
    })
})

/** A process's cache and the raw client an order system would use, under a fresh prefix. */
const orderSystemAndCache = Effect.gen(function*() {
  const prefix = TestRedis.randomPrefix()
  yield* TestRedis.cleanUpOnClose(prefix)
  const cache = yield* Effect.flatMap(TestRedis.connection(prefix), cacheOn)
  const raw = yield* TestRedis.rawClient
  const command = <A>(run: (client: typeof raw) => Promise<A>) => Effect.promise(() => run(raw))
  return { prefix, cache, raw, command, key: (productId: number) => `${prefix}stock:${productId}` }
})

const eventually = <A, E, R>(check: Effect.Effect<A, E, R>) =>
  check.pipe(Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo("2 seconds"))))

layer(SqlRepo.layer.pipe(Layer.provide(TestDatabase.layerMysql)), { excludeTestServices: true })(
  "Redis StockCache, as order systems see it",
  (it) => {
    it.scoped("stock is an integer string at <prefix>stock:<id>, and each change publishes the id on <prefix>stock-changed", () =>
      Effect.gen(function*() {
        const { cache, command, key, prefix } = yield* orderSystemAndCache
        const productId = yield* newProduct(3)
        const listener = yield* TestRedis.rawClient
        const messages: Array<string> = []
        listener.on("message", (_channel: string, message: string) => messages.push(message))
        yield* Effect.promise(() => listener.subscribe(`${prefix}stock-changed`))

        yield* cache.set(productId, 12)
        expect(yield* command((c) => c.get(key(productId)))).toBe("12")
        yield* cache.adjust(productId, -2)
        expect(yield* command((c) => c.get(key(productId)))).toBe("10")
        yield* eventually(Effect.sync(() => expect(messages).toEqual([String(productId), String(productId)])))
      }))

    it.scoped("a missing key (Redis restarted empty) is reloaded from product.stock, never read as 0", () =>
      Effect.gen(function*() {
        const { cache, command, key } = yield* orderSystemAndCache
        const productId = yield* newProduct(8)
        yield* cache.set(productId, 6)

        yield* command((c) => c.del(key(productId)))
        expect(yield* cache.get(productId)).toBe(6)
        expect(yield* command((c) => c.get(key(productId)))).toBe("6")

        yield* command((c) => c.del(key(productId)))
        expect(yield* cache.adjust(productId, -1)).toBe(5)
        yield* databaseReaches(productId, 5)
      }))

    it.scoped("an order system's DECRBY + PUBLISH is seen by watchers and written to product.stock", () =>
      Effect.gen(function*() {
        const { cache, command, key, prefix } = yield* orderSystemAndCache
        const productId = yield* newProduct(2)
        const watch = yield* cache.watch(productId)
        const soldOut = yield* Effect.fork(watch.soldOut)

        yield* command((c) => c.decrby(key(productId), 1))
        yield* command((c) => c.publish(`${prefix}stock-changed`, String(productId)))
        yield* databaseReaches(productId, 1)
        expect(yield* watch.isSoldOut).toBe(false)

        yield* command((c) => c.decrby(key(productId), 1))
        yield* command((c) => c.publish(`${prefix}stock-changed`, String(productId)))
        yield* Fiber.join(soldOut).pipe(Effect.timeout("200 millis"))
        // The watchers hear first; the database follows.
        expect(yield* databaseReaches(productId, 0)).toMatchObject({ stockStatus: "OUT_OF_STOCK" })
      }))

    it.scoped("a change made outside is written to the database even when no process watches the product", () =>
      Effect.gen(function*() {
        const { cache, command, key, prefix } = yield* orderSystemAndCache
        const productId = yield* newProduct(20)
        yield* cache.get(productId) // the key exists
        yield* command((c) => c.incrby(key(productId), 5))
        yield* command((c) => c.publish(`${prefix}stock-changed`, String(productId)))
        yield* databaseReaches(productId, 25)
      }))

    it.scoped("an order system that oversells (a negative key) reads as 0: sold out, and 0 in the database", () =>
      Effect.gen(function*() {
        const { cache, command, key, prefix } = yield* orderSystemAndCache
        const productId = yield* newProduct(1)
        const watch = yield* cache.watch(productId)
        yield* command((c) => c.decrby(key(productId), 3))
        yield* command((c) => c.publish(`${prefix}stock-changed`, String(productId)))

        yield* watch.soldOut.pipe(Effect.timeout("1 second"))
        expect(yield* cache.get(productId)).toBe(0)
        yield* databaseReaches(productId, 0)
        expect(yield* cache.adjust(productId, 4)).toBe(4) // from 0, not from −2
      }))

    it.scoped("a watched key deleted and announced is reloaded from the database, not taken as sold out", () =>
      Effect.gen(function*() {
        const { cache, command, key, prefix } = yield* orderSystemAndCache
        const productId = yield* newProduct(4)
        const watch = yield* cache.watch(productId)
        yield* command((c) => c.del(key(productId)))
        yield* command((c) => c.publish(`${prefix}stock-changed`, String(productId)))

        yield* eventually(command((c) => c.get(key(productId))).pipe(Effect.filterOrFail((v) => v === "4")))
        expect(yield* watch.isSoldOut).toBe(false)
      }))

    it.scoped("a key that holds no integer is StorageUnavailable, not a guess", () =>
      Effect.gen(function*() {
        const { cache, command, key } = yield* orderSystemAndCache
        const productId = yield* newProduct(4)
        yield* command((c) => c.set(key(productId), "many"))
        expect(yield* Effect.flip(cache.get(productId))).toBeInstanceOf(StorageUnavailable)
        expect(yield* Effect.flip(cache.adjust(productId, 1))).toBeInstanceOf(StorageUnavailable)
      }))

    it.scoped("junk on the channel is ignored and later messages still count", () =>
      Effect.gen(function*() {
        const { cache, command, key, prefix } = yield* orderSystemAndCache
        const productId = yield* newProduct(5)
        const watch = yield* cache.watch(productId)
        yield* command((c) => c.publish(`${prefix}stock-changed`, "not-an-id"))
        yield* command((c) => c.publish(`${prefix}stock-changed`, "999999999")) // no such product
        yield* command((c) => c.set(key(productId), "0"))
        yield* command((c) => c.publish(`${prefix}stock-changed`, String(productId)))
        yield* watch.soldOut.pipe(Effect.timeout("1 second"))
      }))

    it.scoped("a watcher whose subscriber connection dropped catches up with what it missed once it is back", () =>
      Effect.gen(function*() {
        const prefix = TestRedis.randomPrefix()
        yield* TestRedis.cleanUpOnClose(prefix)
        const proxy = yield* TestRedis.proxy
        const watching = yield* cacheOn(yield* RedisConnection.make(proxy.url, { keyPrefix: prefix }).pipe(Effect.orDie))
        const selling = yield* cacheOn(yield* TestRedis.connection(prefix))
        const productId = yield* newProduct(3)
        const watch = yield* watching.watch(productId)
        const soldOut = yield* Effect.fork(watch.soldOut)
        yield* Effect.sleep("100 millis") // the watch settled: nothing left to read

        yield* proxy.cut
        yield* selling.set(productId, 0) // published while the watcher is away
        yield* Effect.sleep("100 millis")
        expect(soldOut.unsafePoll()).toBeNull()

        yield* proxy.restore
        yield* Fiber.join(soldOut).pipe(Effect.timeout("5 seconds"))
      }), 20_000)
  }
)

layer(SqlRepo.layer.pipe(Layer.provide(TestDatabase.layerMysql)), { excludeTestServices: true })(
  "Redis StockCache, a key written without the PUBLISH (SPEC §3.14)",
  (it) => {
    it.scoped("a watched product's key is re-read twice a second: the watch and product.stock follow it within a second", () =>
      Effect.gen(function*() {
        const { cache, command, key } = yield* orderSystemAndCache
        const productId = yield* newProduct(2)
        const watch = yield* cache.watch(productId)
        expect(yield* watch.isSoldOut).toBe(false)

        yield* command((c) => c.set(key(productId), "0")) // no PUBLISH
        const seen = yield* watch.soldOut.pipe(Effect.timed, Effect.timeout("1 second"))
        expect(Duration.toMillis(seen[0])).toBeLessThanOrEqual(1_000)
        yield* databaseReaches(productId, 0)
      }))

    it.scoped("once the last watch closes, the key is no longer re-read", () =>
      Effect.gen(function*() {
        const { cache, command, key } = yield* orderSystemAndCache
        const productId = yield* newProduct(2)
        yield* Effect.scoped(cache.watch(productId))
        yield* command((c) => c.set(key(productId), "7")) // no PUBLISH
        yield* Effect.sleep(Duration.times(RedisStockCache.stockPollInterval, 3))
        expect((yield* productInDatabase(productId)).stock).toBe(2)
      }))
  }
)
