import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { Repo } from "../../Repo/Repo.js"
import { StockCache } from "../../StockCache/StockCache.js"
import { Api } from "../Api.js"
import { NotReady } from "../Errors.js"
import { Liveness, Readiness } from "./Api.js"

/** A dependency slower than this counts as down: readiness must answer quickly. */
const probeTimeout = Duration.seconds(1)

const probe = <E, R>(ping: Effect.Effect<void, E, R>) =>
  ping.pipe(
    Effect.timeout(probeTimeout),
    Effect.match({ onFailure: () => "down" as const, onSuccess: () => "up" as const })
  )

export const HttpHealthLive = HttpApiBuilder.group(Api, "health", (handlers) =>
  Effect.gen(function*() {
    const repo = yield* Repo
    const stockCache = yield* StockCache
    return handlers
      .handle("live", () => Effect.succeed(new Liveness({ status: "ok" })))
      .handle("ready", () =>
        Effect.gen(function*() {
          const [database, cache] = yield* Effect.all([probe(repo.ping), probe(stockCache.ping)], {
            concurrency: "unbounded"
          })
          if (database === "up" && cache === "up") {
            return new Readiness({ status: "ok", database, stockCache: cache })
          }
          const down = [database === "down" ? "database" : null, cache === "down" ? "stock cache" : null]
            .filter((name) => name !== null)
          return yield* new NotReady({
            message: `not ready: ${down.join(" and ")} unreachable`,
            database,
            stockCache: cache
          })
        }))
  }))
