import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { ProductNotFound } from "../../Domain/Errors.js"
import type { ProductId } from "../../Domain/Ids.js"
import { Repo } from "../../Repo/Repo.js"
import { UnsubscribeLinks } from "../../Unsubscribe/Links.js"
import { Api } from "../Api.js"
import { Unsubscribed } from "./Api.js"
import { askPage, donePage, htmlResponse, prefersHtml } from "./Page.js"

export const HttpUnsubscribeLive = HttpApiBuilder.group(Api, "unsubscribe", (handlers) =>
  Effect.gen(function*() {
    const links = yield* UnsubscribeLinks
    const repo = yield* Repo

    const productName = (productId: ProductId) =>
      Effect.flatMap(repo.getProduct(productId), Option.match({
        onNone: () => Effect.fail(ProductNotFound.of(productId)),
        onSome: (product) => Effect.succeed(product.name)
      }))

    return handlers
      // Reads only: a scanner or a link preview fetching the link unsubscribes nobody.
      .handle("unsubscribePage", ({ path }) =>
        links.verify(path.token).pipe(
          Effect.flatMap(({ productId }) => productName(productId)),
          Effect.map((name) => htmlResponse(askPage(name)))
        ))
      .handle("unsubscribeByLink", ({ path, request }) =>
        Effect.gen(function*() {
          const { productId, userId } = yield* links.verify(path.token)
          // The same as `DELETE /products/{productId}/subscriptions/{userId}`: idempotent.
          yield* repo.unsubscribe(productId, userId)
          if (prefersHtml(request.headers["accept"])) return htmlResponse(donePage(yield* productName(productId)))
          return new Unsubscribed({ productId, userId, active: false })
        }))
  }))
