/**
 * The `StockCache` port: the live stock of each product, shared by every
 * process (Redis) or held in memory (embedded mode), and the signal the
 * dispatch stops on when a product sells out.
 *
 * The cache is the authority for stock while it holds a key; every change is
 * also written to `product.stock` / `stock_status`, and a missing key (a
 * Redis restarted empty) is reloaded from `product.stock`, never read as 0.
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { ProductNotFound, StorageUnavailable } from "../Domain/Errors.js"
import type { ProductId } from "../Domain/Ids.js"

/**
 * A live view of one product's stock, held for as long as its scope is open.
 * Sold out means stock ≤ the watch's minimum stock (SPEC §3.10: 0 unless the
 * product holds some back).
 */
export interface StockWatch {
  /** The stock visible to this process now. Cheap (no round trip): the fair share reads it per send. */
  readonly stock: Effect.Effect<number>
  /**
   * Whether sold out is visible to this process now. Cheap (no round trip):
   * the dispatch asks it right before every send starts.
   */
  readonly isSoldOut: Effect.Effect<boolean>
  /** Completes as soon as sold out is visible (at once if it already is). */
  readonly soldOut: Effect.Effect<void>
}

export interface StockCacheShape {
  readonly get: (productId: ProductId) => Effect.Effect<number, ProductNotFound | StorageUnavailable>
  /** Sets stock (≥ 0) and returns it. */
  readonly set: (productId: ProductId, stock: number) => Effect.Effect<number, ProductNotFound | StorageUnavailable>
  /** Adds `delta` atomically, never going below 0, and returns the new stock. */
  readonly adjust: (productId: ProductId, delta: number) => Effect.Effect<number, ProductNotFound | StorageUnavailable>
  /**
   * Watches a product's stock; sold out is stock ≤ `minimumStock` (default 0).
   * Changes written to the backing store by others are seen too: announced
   * ones within milliseconds, unannounced ones within a second (SPEC §3.14).
   */
  readonly watch: (
    productId: ProductId,
    minimumStock?: number
  ) => Effect.Effect<StockWatch, ProductNotFound | StorageUnavailable, Scope.Scope>
  /** Answers when the backing store does (readiness). */
  readonly ping: Effect.Effect<void, StorageUnavailable>
}

export class StockCache extends Context.Tag("restock/StockCache")<StockCache, StockCacheShape>() {}
