import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { RoundNotFound } from "../../Domain/Errors.js"
import type { ProductId, RestockRound } from "../../Domain/Ids.js"
import { Round } from "../../Domain/Round.js"
import { Restock } from "../../Dispatch/Restock.js"
import { Products } from "../../Products.js"
import { Repo } from "../../Repo/Repo.js"
import { Api } from "../Api.js"
import * as Sse from "../Sse.js"
import { RecipientPage } from "./Api.js"

const encodeRound = Schema.encodeSync(Schema.NullOr(Round))

export const HttpRoundsLive = HttpApiBuilder.group(Api, "rounds", (handlers) =>
  Effect.gen(function*() {
    const repo = yield* Repo
    const restock = yield* Restock
    const products = yield* Products

    const requireRound = (productId: ProductId, restockRound: RestockRound) =>
      Effect.zipRight(
        products.require(productId),
        Effect.flatMap(
          repo.getRound(productId, restockRound),
          Option.match({
            onNone: () => Effect.fail(RoundNotFound.of(productId, restockRound)),
            onSome: Effect.succeed
          })
        )
      )

    return handlers
      .handle("restock", ({ path, payload }) =>
        restock.trigger(path.productId, payload?.stock === undefined ? undefined : { stock: payload.stock }))
      .handle("resume", ({ path }) => restock.resume(path.productId))
      .handle("listRounds", ({ path }) => Effect.zipRight(products.require(path.productId), repo.listRounds(path.productId)))
      .handle("getRound", ({ path }) => requireRound(path.productId, path.restockRound))
      .handle("recipients", ({ path, urlParams }) =>
        Effect.zipRight(
          requireRound(path.productId, path.restockRound),
          repo.recipients(path.productId, path.restockRound, {
            afterId: urlParams.afterId ?? null,
            limit: urlParams.limit
          })
        ).pipe(Effect.map((page) =>
          new RecipientPage({ items: page.items, nextAfterId: page.nextAfterId as RecipientPage["nextAfterId"] })
        )))
      .handle("progress", ({ path }) =>
        Effect.gen(function*() {
          // Unknown products are a 404, answered before the stream opens.
          yield* products.require(path.productId)
          const events = restock.progress(path.productId).pipe(
            Stream.map((round) => Sse.encodeEvent("progress", encodeRound(round))),
            Stream.catchAll((error) =>
              Stream.fromEffect(
                Effect.logWarning("progress stream ended early").pipe(
                  Effect.annotateLogs({ productId: path.productId, error: error.message })
                )
              ).pipe(Stream.drain)
            )
          )
          return yield* Sse.response(events)
        }))
  }))
