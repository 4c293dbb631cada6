/**
 * `GET /metrics`: public, counts only (no label carries a user id), in the
 * Prometheus text format. Scrapes are not access-logged: a scraper calls
 * every few seconds and would drown the log.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Prometheus } from "../../Observability/Prometheus.js"

/** The exposition format version Prometheus negotiates for plain text. */
const contentType = "text/plain; version=0.0.4; charset=utf-8"

export const MetricsRouteLive = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const prometheus = yield* Prometheus
    yield* router.get(
      "/metrics",
      prometheus.scrape.pipe(
        Effect.map((body) => HttpServerResponse.text(body, { contentType, headers: { "cache-control": "no-store" } })),
        HttpMiddleware.withLoggerDisabled
      )
    )
  })
).pipe(Layer.provide(Prometheus.layer))
