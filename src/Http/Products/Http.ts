import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import { Products } from "../../Products.js"
import { Api } from "../Api.js"
import { ProductPage, ProductSummary } from "./Api.js"

/** Thin: the rules are the `Products` service's. */
export const HttpProductsLive = HttpApiBuilder.group(Api, "products", (handlers) =>
  Effect.gen(function*() {
    const products = yield* Products
    return handlers
      .handle("getProduct", ({ path }) => products.get(path.productId))
      .handle("upsertProduct", ({ path, payload }) => products.upsert(path.productId, payload))
      .handle("listProducts", ({ urlParams }) =>
        products.list({ afterId: urlParams.afterId ?? null, limit: urlParams.limit }).pipe(
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
      .handle("setStock", ({ path, payload }) => products.setStock(path.productId, payload.stock))
      .handle("adjustStock", ({ path, payload }) => products.adjustStock(path.productId, payload.delta))
  }))
