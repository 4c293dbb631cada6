import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import { Repo } from "../../Repo/Repo.js"
import { Api } from "../Api.js"
import { requireActingFor } from "../Auth/Principal.js"

export const HttpSubscriptionsLive = HttpApiBuilder.group(Api, "subscriptions", (handlers) =>
  Effect.gen(function*() {
    const repo = yield* Repo
    return handlers
      .handle("subscribe", ({ path }) =>
        Effect.zipRight(requireActingFor(path.userId), repo.subscribe(path.productId, path.userId)))
      .handle("unsubscribe", ({ path }) =>
        Effect.zipRight(requireActingFor(path.userId), repo.unsubscribe(path.productId, path.userId)))
  }))
