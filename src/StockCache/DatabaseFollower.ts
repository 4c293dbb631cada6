/**
 * Keeps `product.stock` / `stock_status` in step with the Redis stock keys,
 * for the Redis `StockCache` of one process.
 *
 * The key is the authority; the database follows every change. The process
 * that makes a change writes it before answering (`follow`), and every
 * process, told that a key may have changed (a `stock-changed` message, a
 * resubscription, or a poll that read a new value), compares the key with
 * `product.stock` and writes it if they differ (`changed`), so a change by an
 * order system is written too. Each write is checked against the key
 * afterwards and repeated if the key moved meanwhile, so concurrent writers
 * cannot leave `product.stock` on an older value.
 *
 * It holds no Redis connection: the cache hands it `readKey`, a GET on the
 * cache's one command connection, numbered like every command there (the
 * order in which results may reach a mirror rests on that numbering).
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import { ProductNotFound, type StorageUnavailable } from "../Domain/Errors.js"
import type { ProductId } from "../Domain/Ids.js"
import { clampStock } from "../Domain/Product.js"
import { Repo } from "../Repo/Repo.js"
import { drain } from "./Drain.js"

export interface DatabaseFollower {
  /**
   * After a change made here: the database follows before the caller hears
   * back, or, if it cannot, in the background. Never fails.
   */
  readonly follow: (productId: ProductId, stock: number) => Effect.Effect<void>
  /** The key may have changed: compare it with `product.stock` in the background. */
  readonly changed: (productId: ProductId) => Effect.Effect<void>
  /** `changed`, from outside the runtime (a channel's message handler). */
  readonly unsafeChanged: (productId: ProductId) => void
  /** Handles what `changed` queued, four products at a time; runs until interrupted. */
  readonly run: Effect.Effect<never>
}

/** What the key of a product holds now, `None` when it is missing; fails on a value that is not an integer. */
export type ReadKey = (productId: ProductId) => Effect.Effect<Option.Option<number>, StorageUnavailable>

/** How often a write is re-checked against a key that keeps moving before leaving it to the next message. */
const maxDatabaseWrites = 3

export const make = (readKey: ReadKey): Effect.Effect<DatabaseFollower, never, Repo> =>
  Effect.gen(function*() {
    const repo = yield* Repo
    const queue = yield* Queue.unbounded<ProductId>()

    /**
     * Writes `stock` to `product.stock`, then checks the key: if it moved
     * meanwhile (and another writer may have written an older value after
     * ours), writes again what it holds now. Every last write is so checked by
     * its writer; one that keeps losing the race hands over to the queue.
     */
    const writeToDatabase = (productId: ProductId, stock: number): Effect.Effect<void, ProductNotFound | StorageUnavailable> =>
      Effect.gen(function*() {
        let value = stock
        for (let write = 1; write <= maxDatabaseWrites; write++) {
          yield* repo.setStock(productId, clampStock(value))
          const now = yield* readKey(productId)
          if (Option.isNone(now)) return
          if (now.value === value) return
          value = now.value
        }
        yield* Queue.offer(queue, productId)
      })

    const follow = (productId: ProductId, stock: number) =>
      writeToDatabase(productId, stock).pipe(
        Effect.catchAll((error) =>
          Effect.zipRight(
            Effect.logWarning(`product.stock of ${productId} not written yet; retrying in the background`, error.message),
            Queue.offer(queue, productId)
          )
        )
      )

    const followChange = (productId: ProductId): Effect.Effect<void> =>
      Effect.gen(function*() {
        const stock = yield* readKey(productId)
        // A missing key has nothing new for the database: it is reloaded from it.
        if (Option.isNone(stock)) return
        // Every process hears every change: only one that finds the database behind writes.
        const product = yield* repo.getProduct(productId)
        if (Option.isNone(product)) return yield* ProductNotFound.of(productId)
        if (product.value.stock === clampStock(stock.value)) return
        yield* writeToDatabase(productId, stock.value)
      }).pipe(
        Effect.catchTags({
          ProductNotFound: () => Effect.logDebug(`stock changed for product ${productId}, which the database does not have`),
          StorageUnavailable: (error) =>
            Effect.zipRight(
              Effect.logWarning(`product.stock of ${productId} not written yet; retrying in 1 s`, error.message),
              Effect.fork(Effect.zipRight(Effect.sleep("1 second"), Queue.offer(queue, productId)))
            )
        })
      )

    return {
      follow,
      changed: (productId) => Queue.offer(queue, productId),
      unsafeChanged: (productId) => {
        queue.unsafeOffer(productId)
      },
      run: drain(queue, followChange, 4)
    }
  })
