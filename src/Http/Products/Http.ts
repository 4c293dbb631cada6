import { HttpApiBuilder } from "@effect/platform"
import { Effect, Option } from "effect"
import { ProductNotFound } from "../../Domain/Errors.js"
import type { ProductId } from "../../Domain/Ids.js"
import { Product, stockStatusOf } from "../../Domain/Product.js"
import { Repo } from "../../Repo/Repo.js"
import { StockCache } from "../../StockCache/StockCache.js"
import { Api } from "../Api.js"
import { ProductPage, ProductSummary } from "./Api.js"

const withStock = (product: Product, stock: number): Product =>
  new Product({ ...product, stock, stockStatus: stockStatusOf(stock) })

export const HttpProductsLive = HttpApiBuilder.group(Api, "products", (handlers) =>
  Effect.gen(function*() {
    const repo = yield* Repo
    const stockCache = yield* StockCache

    const requireProduct = (productId: ProductId) =>
      Effect.flatMap(
        repo.getProduct(productId),
        Option.match({ onNone: () => Effect.fail(ProductNotFound.of(productId)), onSome: Effect.succeed })
      )

    /**
     * The stock cache is the authority on stock while it holds the key (an
     * order system may write it directly); the row follows it. When the cache
     * cannot answer, the row's value is the best there is.
     */
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

    return handlers
      .handle("getProduct", ({ path }) => Effect.flatMap(requireProduct(path.productId), withLiveStock))
      .handle("upsertProduct", ({ path, payload }) =>
        Effect.gen(function*() {
          // The row first (it may not exist yet), then the stock through the
          // cache, which writes it to the row as well: cache and row agree.
          const product = yield* repo.upsertProduct(path.productId, { name: payload.name })
          if (payload.stock === undefined) return yield* withLiveStock(product)
          const stock = yield* stockCache.set(path.productId, payload.stock).pipe(
            Effect.catchTag("ProductNotFound", (error) => Effect.die(error))
          )
          return withStock(product, stock)
        }))
      .handle("listProducts", ({ urlParams }) =>
        repo.listProducts({ afterId: urlParams.afterId ?? null, limit: urlParams.limit }).pipe(
          Effect.map((page) =>
            new ProductPage({
              items: page.items.map((summary) =>
                new ProductSummary({
                  ...summary.product,
                  activeSubscribers: summary.activeSubscribers,
                  latestRound: summary.latestRound
                })
              ),
              nextAfterId: page.nextAfterId as ProductPage["nextAfterId"]
            })
          )
        ))
      .handle("setStock", ({ path, payload }) =>
        Effect.gen(function*() {
          const product = yield* requireProduct(path.productId)
          return withStock(product, yield* stockCache.set(path.productId, payload.stock))
        }))
      .handle("adjustStock", ({ path, payload }) =>
        Effect.gen(function*() {
          const product = yield* requireProduct(path.productId)
          return withStock(product, yield* stockCache.adjust(path.productId, payload.delta))
        }))
  }))
