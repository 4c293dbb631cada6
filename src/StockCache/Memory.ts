/**
 * The in-process `StockCache` (embedded mode): one `SubscriptionRef` per
 * product, loaded from `product.stock` the first time the product is used.
 *
 * A change is written to the database while the product's ref is held, and
 * the ref takes the new value only once the write succeeded: changes to one
 * product reach the database one at a time and in order, so
 * `product.stock` never ends on an older value than the cache. A watch reads
 * the same ref, so it sees a change the moment it is made.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { ProductNotFound, type StorageUnavailable } from "../Domain/Errors.js"
import type { ProductId } from "../Domain/Ids.js"
import { clampStock } from "../Domain/Product.js"
import { Repo } from "../Repo/Repo.js"
import { StockCache, type StockCacheShape, type StockWatch } from "./StockCache.js"

export const make: Effect.Effect<StockCacheShape, never, Repo> = Effect.gen(function*() {
  const repo = yield* Repo
  const refs = new Map<ProductId, SubscriptionRef.SubscriptionRef<number>>()
  // Loads one product at a time, so two first uses of a product make one ref.
  const loading = yield* Effect.makeSemaphore(1)

  const refOf = (
    productId: ProductId
  ): Effect.Effect<SubscriptionRef.SubscriptionRef<number>, ProductNotFound | StorageUnavailable> =>
    Effect.suspend(() => {
      const existing = refs.get(productId)
      if (existing !== undefined) return Effect.succeed(existing)
      return loading.withPermits(1)(
        Effect.suspend(() => {
          const loaded = refs.get(productId)
          if (loaded !== undefined) return Effect.succeed(loaded)
          return repo.getProduct(productId).pipe(
            Effect.flatMap(Option.match({
              onNone: () => Effect.fail(ProductNotFound.of(productId)),
              onSome: (product) => SubscriptionRef.make(product.stock)
            })),
            Effect.tap((ref) => Effect.sync(() => refs.set(productId, ref)))
          )
        })
      )
    })

  /** Applies `next` to the current stock, writes it to the database, then publishes it to watchers. */
  const change = (productId: ProductId, next: (current: number) => number) =>
    Effect.flatMap(refOf(productId), (ref) =>
      SubscriptionRef.modifyEffect(ref, (current) => {
        const stock = clampStock(next(current))
        return Effect.as(repo.setStock(productId, stock), [stock, stock] as const)
      }))

  // Nothing writes the ref but this process: no re-read is needed to see a change (SPEC §3.14).
  const watch = (productId: ProductId, minimumStock = 0) =>
    Effect.map(refOf(productId), (ref): StockWatch => ({
      stock: SubscriptionRef.get(ref),
      isSoldOut: Effect.map(SubscriptionRef.get(ref), (stock) => stock <= minimumStock),
      soldOut: ref.changes.pipe(Stream.filter((stock) => stock <= minimumStock), Stream.take(1), Stream.runDrain)
    }))

  return {
    get: (productId) => Effect.flatMap(refOf(productId), SubscriptionRef.get),
    set: (productId, stock) => change(productId, () => stock),
    adjust: (productId, delta) => change(productId, (current) => current + delta),
    watch,
    ping: repo.ping
  } satisfies StockCacheShape
})

export const layer: Layer.Layer<StockCache, never, Repo> = Layer.effect(StockCache, make)
