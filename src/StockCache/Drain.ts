/**
 * A worker over a queue of product ids, shared by the Redis cache's two
 * background jobs (refreshing watched mirrors, and the database following the
 * keys). A burst of messages about one product is handled once: what matters
 * is the key's value when it is read, not how many times it changed.
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type { ProductId } from "../Domain/Ids.js"

/** Takes what is queued, each product once, and handles them `concurrency` at a time. */
export const drain = (
  queue: Queue.Queue<ProductId>,
  handle: (productId: ProductId) => Effect.Effect<void>,
  concurrency: number
) =>
  Effect.forever(
    Effect.gen(function*() {
      const first = yield* Queue.take(queue)
      const rest = yield* Queue.takeAll(queue)
      const productIds = new Set([first, ...rest])
      yield* Effect.forEach(productIds, handle, { concurrency, discard: true })
    })
  )
