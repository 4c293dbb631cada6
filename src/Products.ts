/**
 * Products as the API serves them: the rules that sit between the handlers
 * and the two ports that hold a product.
 *
 * - The stock cache is the authority on stock while it holds the key (an
 *   order system may write it directly); the row follows it. When the cache
 *   cannot answer a read, the row's value is the best there is.
 * - An upsert writes the row first (it may not exist yet), then the stock
 *   through the cache, which writes it to the row as well: cache and row agree.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { ProductNotFound } from "./Domain/Errors.js"
import type { ProductId } from "./Domain/Ids.js"
import { Product, type ProductFields, stockStatusOf } from "./Domain/Product.js"
import { Repo } from "./Repo/Repo.js"
import { StockCache } from "./StockCache/StockCache.js"

/** The stock comes from the cache, which clamps it into range: no need to validate it again. */
const withStock = (product: Product, stock: number): Product =>
  new Product({ ...product, stock, stockStatus: stockStatusOf(stock, product.minimumStock) }, { disableValidation: true })

export class Products extends Effect.Service<Products>()("restock/Products", {
  effect: Effect.gen(function*() {
    const repo = yield* Repo
    const stockCache = yield* StockCache

    /** The product as stored, or `ProductNotFound`. */
    const require = (productId: ProductId) =>
      Effect.flatMap(
        repo.getProduct(productId),
        Option.match({ onNone: () => Effect.fail(ProductNotFound.of(productId)), onSome: Effect.succeed })
      )

    const withLiveStock = (product: Product) =>
      stockCache.get(product.id).pipe(
        Effect.map((stock) => withStock(product, stock)),
        Effect.catchAll((error) =>
          Effect.as(
            Effect.logWarning("stock cache unavailable: answering with the stored stock").pipe(
              Effect.annotateLogs({ productId: product.id, error: error.message })
            ),
            product
          )
        )
      )

    /** The product with its stock as the cache has it. */
    const get = (productId: ProductId) => Effect.flatMap(require(productId), withLiveStock)

    const upsert = (productId: ProductId, fields: ProductFields) =>
      Effect.gen(function*() {
        // The minimum is written first: the stock set below then gets its status against it.
        const product = yield* repo.upsertProduct(productId, {
          name: fields.name,
          minimumStock: fields.minimumStock,
          notifyPerUnit: fields.notifyPerUnit
        })
        if (fields.stock === undefined) return yield* withLiveStock(product)
        // The row exists now: a ProductNotFound from the cache would be a defect.
        const stock = yield* stockCache.set(productId, fields.stock).pipe(
          Effect.catchTag("ProductNotFound", (error) => Effect.die(error))
        )
        return withStock(product, stock)
      })

    const setStock = (productId: ProductId, stock: number) =>
      Effect.flatMap(require(productId), (product) =>
        Effect.map(stockCache.set(productId, stock), (set) => withStock(product, set)))

    const adjustStock = (productId: ProductId, delta: number) =>
      Effect.flatMap(require(productId), (product) =>
        Effect.map(stockCache.adjust(productId, delta), (adjusted) => withStock(product, adjusted)))

    return { require, get, upsert, setStock, adjustStock, list: repo.listProducts } as const
  })
}) {}
