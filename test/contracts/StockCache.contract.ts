/**
 * What every `StockCache` adapter guarantees: get/set/adjust semantics,
 * adjustments atomic and never below 0, the database following every change,
 * a first use read from `product.stock`, and watches that see a sell-out at
 * once, including one made by another process.
 *
 * `makeCaches(n)` gives n caches over one store: for the in-process adapter
 * the same cache n times, for Redis one per connection, standing for
 * separate processes. The suite runs in a layer that provides the `Repo`.
 */
import { expect, layer } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, type Layer, Option, Schedule, Scope } from "effect"
import { ProductNotFound } from "../../src/Domain/Errors.js"
import { ProductId } from "../../src/Domain/Ids.js"
import type { Product } from "../../src/Domain/Product.js"
import { Repo } from "../../src/Repo/Repo.js"
import type { StockCacheShape } from "../../src/StockCache/StockCache.js"

export interface StockCacheUnderTest {
  /** The Repo (and whatever else the caches need) for the whole suite. */
  readonly layer: Layer.Layer<Repo, unknown>
  readonly makeCaches: (processes: number) => Effect.Effect<ReadonlyArray<StockCacheShape>, never, Scope.Scope | Repo>
}

let lastProductId = 1_000
/** A product of the test's own, with `stock`. */
export const newProduct = (stock: number) =>
  Effect.gen(function*() {
    const productId = ProductId.make(++lastProductId)
    yield* (yield* Repo).upsertProduct(productId, { name: `Kettle ${productId}`, stock })
    return productId
  })

export const productInDatabase = (productId: ProductId) =>
  Effect.flatMap(Repo, (repo) => repo.getProduct(productId)).pipe(
    Effect.map(Option.getOrThrow),
    Effect.orDie
  )

/** Waits (up to 2 s) until `product.stock` is `stock`, and answers the product. */
export const databaseReaches = (productId: ProductId, stock: number) =>
  productInDatabase(productId).pipe(
    Effect.filterOrFail((product: Product) => product.stock === stock, () => "not yet"),
    Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("2 seconds"))),
    Effect.catchAll(() =>
      Effect.flatMap(productInDatabase(productId), (product) =>
        Effect.dieMessage(`product.stock of ${productId} stayed ${product.stock}, expected ${stock}`)))
  )

const unknownProduct = ProductId.make(999_999_999)

export const stockCacheContract = (name: string, underTest: StockCacheUnderTest) =>
  layer(underTest.layer, { excludeTestServices: true })(`StockCache contract: ${name}`, (it) => {
    it.scoped("a first get reads product.stock; set and adjust answer the new stock, which get then reads", () =>
      Effect.gen(function*() {
        const [cache] = yield* underTest.makeCaches(1)
        const productId = yield* newProduct(7)
        expect(yield* cache!.get(productId)).toBe(7)
        expect(yield* cache!.set(productId, 12)).toBe(12)
        expect(yield* cache!.get(productId)).toBe(12)
        expect(yield* cache!.adjust(productId, -5)).toBe(7)
        expect(yield* cache!.adjust(productId, 3)).toBe(10)
        expect(yield* cache!.get(productId)).toBe(10)
      }))

    it.scoped("an unknown product is ProductNotFound for get, set, adjust and watch", () =>
      Effect.gen(function*() {
        const [cache] = yield* underTest.makeCaches(1)
        const expected = ProductNotFound.of(unknownProduct)
        expect(yield* Effect.flip(cache!.get(unknownProduct))).toEqual(expected)
        expect(yield* Effect.flip(cache!.set(unknownProduct, 3))).toEqual(expected)
        expect(yield* Effect.flip(cache!.adjust(unknownProduct, 1))).toEqual(expected)
        expect(yield* Effect.flip(cache!.watch(unknownProduct))).toEqual(expected)
      }))

    it.scoped("adjust never goes below 0, and the database follows every change with its stock status", () =>
      Effect.gen(function*() {
        const [cache] = yield* underTest.makeCaches(1)
        const productId = yield* newProduct(5)

        expect(yield* cache!.adjust(productId, -100)).toBe(0)
        expect(yield* productInDatabase(productId)).toMatchObject({ stock: 0, stockStatus: "OUT_OF_STOCK" })
        expect(yield* cache!.adjust(productId, -1)).toBe(0)
        expect(yield* cache!.adjust(productId, 4)).toBe(4)
        expect(yield* productInDatabase(productId)).toMatchObject({ stock: 4, stockStatus: "IN_STOCK" })
        expect(yield* cache!.set(productId, 0)).toBe(0)
        expect(yield* productInDatabase(productId)).toMatchObject({ stock: 0, stockStatus: "OUT_OF_STOCK" })
      }))

    it.scoped("50 concurrent adjustments from 2 processes are atomic: each sees its own step, the end is exact", () =>
      Effect.gen(function*() {
        const caches = yield* underTest.makeCaches(2)
        const productId = yield* newProduct(100)
        yield* Effect.forEach(caches, (cache) => cache.get(productId)) // both have it loaded

        const answers = yield* Effect.forEach(
          Array.from({ length: 50 }, (_, i) => caches[i % caches.length]!),
          (cache) => cache.adjust(productId, -1),
          { concurrency: "unbounded" }
        )

        // Every intermediate value answered exactly once: no two adjustments read the same stock.
        expect([...answers].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => 50 + i))
        for (const cache of caches) expect(yield* cache.get(productId)).toBe(50)
        yield* databaseReaches(productId, 50)
      }))

    it.scoped("concurrent adjustments past zero clamp at 0 and never answer a negative stock", () =>
      Effect.gen(function*() {
        const caches = yield* underTest.makeCaches(2)
        const productId = yield* newProduct(10)
        const answers = yield* Effect.forEach(
          Array.from({ length: 30 }, (_, i) => caches[i % caches.length]!),
          (cache) => cache.adjust(productId, -1),
          { concurrency: "unbounded" }
        )
        expect(answers.filter((stock) => stock === 0)).toHaveLength(21)
        expect(Math.min(...answers)).toBe(0)
        yield* databaseReaches(productId, 0)
      }))

    it.scoped("a process that uses a product for the first time reads the database's stock", () =>
      Effect.gen(function*() {
        const productId = yield* newProduct(9)
        const [first] = yield* underTest.makeCaches(1)
        expect(yield* first!.get(productId)).toBe(9)
        yield* first!.adjust(productId, -2)
        const [later] = yield* underTest.makeCaches(1)
        expect(yield* later!.get(productId)).toBe(7)
      }))

    it.scoped("a watch is sold out right after set(0) on the same process, and soldOut completes", () =>
      Effect.gen(function*() {
        const [cache] = yield* underTest.makeCaches(1)
        const productId = yield* newProduct(3)
        const watch = yield* cache!.watch(productId)
        expect(yield* watch.isSoldOut).toBe(false)
        const soldOut = yield* Effect.fork(watch.soldOut)

        yield* cache!.set(productId, 0)
        expect(yield* watch.isSoldOut).toBe(true)
        yield* Fiber.join(soldOut).pipe(Effect.timeout("1 second"))
      }))

    it.scoped("a watch sees, within milliseconds, another process selling the product out", () =>
      Effect.gen(function*() {
        const [watching, selling] = yield* underTest.makeCaches(2)
        const productId = yield* newProduct(2)
        const watch = yield* watching!.watch(productId)
        const soldOut = yield* Effect.fork(watch.soldOut)

        yield* selling!.adjust(productId, -1)
        yield* Effect.sleep("50 millis")
        expect(yield* watch.isSoldOut).toBe(false)
        expect(soldOut.unsafePoll()).toBeNull()

        yield* selling!.set(productId, 0)
        const [elapsed] = yield* Fiber.join(soldOut).pipe(Effect.timed, Effect.timeout("1 second"))
        expect(Duration.toMillis(elapsed)).toBeLessThan(200)
        expect(yield* watch.isSoldOut).toBe(true)
      }))

    it.scoped("soldOut completes at once for a product already out of stock, and a restock clears isSoldOut", () =>
      Effect.gen(function*() {
        const [cache, other] = yield* underTest.makeCaches(2)
        const productId = yield* newProduct(0)
        const watch = yield* cache!.watch(productId)
        expect(yield* watch.isSoldOut).toBe(true)
        yield* watch.soldOut.pipe(Effect.timeout("100 millis"))

        yield* other!.set(productId, 5)
        yield* watch.isSoldOut.pipe(
          Effect.filterOrFail((soldOut) => !soldOut, () => "still sold out"),
          Effect.retry(Schedule.spaced("5 millis").pipe(Schedule.upTo("1 second")))
        )
      }))

    it.scoped("a watch with a minimum stock is sold out at or below it (SPEC §3.10), and reads the stock", () =>
      Effect.gen(function*() {
        const [cache] = yield* underTest.makeCaches(1)
        const productId = yield* newProduct(5)
        const watch = yield* cache!.watch(productId, 3)
        expect([yield* watch.stock, yield* watch.isSoldOut]).toEqual([5, false])
        const soldOut = yield* Effect.fork(watch.soldOut)

        yield* cache!.adjust(productId, -1)
        expect([yield* watch.stock, yield* watch.isSoldOut]).toEqual([4, false])
        expect(soldOut.unsafePoll()).toBeNull()
        yield* cache!.adjust(productId, -1)
        expect([yield* watch.stock, yield* watch.isSoldOut]).toEqual([3, true])
        yield* Fiber.join(soldOut).pipe(Effect.timeout("1 second"))
        // Another watch of the same product, with no minimum, is not sold out at 3.
        const plain = yield* cache!.watch(productId)
        expect(yield* plain.isSoldOut).toBe(false)
      }))

    it.scoped("two watches of one product see the same changes, and closing one leaves the other working", () =>
      Effect.gen(function*() {
        const [cache, other] = yield* underTest.makeCaches(2)
        const productId = yield* newProduct(4)
        /** Waits (up to 1 s) until the watch reads `soldOut`. */
        const reads = (watch: { readonly isSoldOut: Effect.Effect<boolean> }, soldOut: boolean) =>
          watch.isSoldOut.pipe(
            Effect.filterOrFail((seen) => seen === soldOut, () => "not yet"),
            Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo("1 second"))),
            Effect.orElse(() => Effect.dieMessage(`the watch did not come to read soldOut = ${soldOut}`))
          )
        const first = yield* cache!.watch(productId)
        const secondScope = yield* Scope.make()
        const second = yield* cache!.watch(productId).pipe(Scope.extend(secondScope))
        expect([yield* first.isSoldOut, yield* second.isSoldOut]).toEqual([false, false])

        // A change by another process reaches both, in each direction.
        yield* other!.set(productId, 0)
        yield* Effect.all([first.soldOut, second.soldOut]).pipe(Effect.timeout("1 second"))
        expect([yield* first.isSoldOut, yield* second.isSoldOut]).toEqual([true, true])
        yield* other!.set(productId, 3)
        yield* reads(first, false)
        yield* reads(second, false)

        // Closing the second leaves the first watching.
        yield* Scope.close(secondScope, Exit.void)
        yield* other!.adjust(productId, -3)
        yield* first.soldOut.pipe(Effect.timeout("1 second"))
        expect(yield* first.isSoldOut).toBe(true)
      }))

    it.scoped("answers ping while its store is up", () =>
      Effect.gen(function*() {
        const [cache] = yield* underTest.makeCaches(1)
        yield* cache!.ping
      }))
  })
