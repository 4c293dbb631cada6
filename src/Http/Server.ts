/**
 * The HTTP edge assembled: the API's handlers, its middleware, `/openapi.json`
 * and `/docs`, and a Node server to serve them.
 *
 * Built against the ports only (`Repo`, `StockCache`, `DeliveryFeed`,
 * `Restock`), `UnsubscribeLinks` and `AuthConfig`, with the feature services
 * on them (`Products`); `Layers.ts` / `main.ts` choose the adapters.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import { Products } from "../Products.js"
import { accessLog } from "./AccessLog.js"
import { Api } from "./Api.js"
import { AuthLive } from "./Auth/Http.js"
import { ConsoleRoutesLive } from "./Console/Http.js"
import { DocsRouteLive } from "./Docs.js"
import { HttpHealthLive } from "./Health/Http.js"
import { MetricsRouteLive } from "./Metrics/Http.js"
import { HttpProductsLive } from "./Products/Http.js"
import { requestGuard } from "./RequestGuard.js"
import { HttpRoundsLive } from "./Rounds/Http.js"
import { OpenStreams } from "./Sse.js"
import { HttpSubscriptionsLive } from "./Subscriptions/Http.js"
import { HttpUnsubscribeLive } from "./Unsubscribe/Http.js"
import { HttpUsersLive } from "./Users/Http.js"

/** Every endpoint of the API with its handler. */
export const ApiLive = HttpApiBuilder.api(Api).pipe(
  Layer.provide([
    HttpHealthLive,
    HttpProductsLive,
    HttpRoundsLive,
    HttpSubscriptionsLive,
    HttpUnsubscribeLive,
    HttpUsersLive
  ]),
  Layer.provide([AuthLive, OpenStreams.layer, Products.Default])
)

/**
 * Routes served beside the API, on the same router (so the request guard
 * answers for them too): the documentation now; the console (`GET /`) and
 * `GET /metrics` join them here, as layers built with
 * `HttpApiBuilder.Router.use((router) => router.get(...))`.
 */
export const ExtraRoutesLive = Layer.mergeAll(
  HttpApiBuilder.middlewareOpenApi({ path: "/openapi.json" }),
  DocsRouteLive,
  ConsoleRoutesLive,
  MetricsRouteLive
)

/**
 * The router refuses a path parameter over 100 characters as if no route
 * matched (a 404 for an id of 101 digits, where §4 says 400). The bound
 * guards its regex parameters, which this API has none of; Node already caps
 * a request's head at 16 KiB, so that is the bound here.
 */
const routerConfig = HttpRouter.setRouterConfig({ maxParamLength: 16 * 1024 })

/** The edge, served by whatever `HttpServer` is provided. */
export const HttpLive = HttpApiBuilder.serve(accessLog).pipe(
  Layer.provide(routerConfig),
  Layer.provide(ExtraRoutesLive),
  Layer.provide(HttpApiBuilder.middleware(Api, requestGuard)),
  Layer.provide(ApiLive)
)

export interface ServeOptions {
  readonly host: string
  readonly port: number
  /** After shutdown begins, connections still open this long later are cut. */
  readonly shutdownGrace?: Duration.DurationInput | undefined
}

/**
 * Node's server starts listening before the API's handler is attached (and
 * the handler is detached before it closes at shutdown). A request in that
 * gap would have no listener and hang until the client gives up; this one
 * answers it 503 instead, and stands aside whenever the API's handler is
 * there.
 */
export const answerWhileNoHandler = (server: Server) => (_request: IncomingMessage, response: ServerResponse) => {
  if (server.listenerCount("request") > 1) return
  response.writeHead(503, { "content-type": "application/json", "retry-after": "1", connection: "close" })
  response.end(JSON.stringify({ _tag: "ServiceUnavailable", message: "the service is starting or stopping" }))
}

/**
 * The edge on `host:port`, with Node. Shutdown: the SSE streams end (their
 * lifetime is released with the API), the server stops accepting and closes
 * idle connections, and whatever is still open after `shutdownGrace` (a
 * request that arrived on a kept-alive connection as the listener went away)
 * is cut, so the process exits in bounded time.
 */
export const serve = (options: ServeOptions) =>
  Layer.unwrapEffect(Effect.sync(() => {
    const server = createServer()
    server.on("request", answerWhileNoHandler(server))
    const cutAfterGrace = Layer.scopedDiscard(Effect.addFinalizer(() =>
      Effect.sleep(Duration.decode(options.shutdownGrace ?? "5 seconds")).pipe(
        Effect.andThen(Effect.sync(() => server.closeAllConnections())),
        Effect.forkDaemon
      )
    ))
    return HttpLive.pipe(
      Layer.provide(cutAfterGrace),
      HttpServer.withLogAddress,
      Layer.provideMerge(NodeHttpServer.layer(() => server, { host: options.host, port: options.port }))
    )
  }))
