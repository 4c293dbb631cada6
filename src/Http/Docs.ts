/**
 * `GET /docs`: Swagger UI, bundled with @effect/platform (the page loads
 * nothing from a CDN). Its module carries ~2 MB of script, and the page it
 * builds holds the whole spec: importing it at start-up cost every process
 * ~7 MiB of resident memory (measured, `node --expose-gc`, RSS after import)
 * whether or not anyone reads the docs. So it is imported on the first
 * request, and the page is kept from then on.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import { Api } from "./Api.js"

export const DocsRouteLive = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const page = yield* Effect.cached(
      Effect.promise(() => import("@effect/platform/HttpApiSwagger")).pipe(
        Effect.flatMap((Swagger) =>
          HttpLayerRouter.toHttpEffect(Swagger.layerHttpLayerRouter({ api: Api, path: "/docs" }))
        ),
        Scope.extend(scope)
      )
    )
    yield* router.get("/docs", Effect.flatten(page))
  })
)
