/**
 * The operator console (`GET /`): one static page, its scripts and its style,
 * read once from beside this module (in `src/` under tsx; in `dist/`, where
 * `npm run build` copies them) and served as they are. The page calls the public API with the admin token the
 * operator pastes; nothing here knows about tokens.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import { readFile } from "node:fs/promises"

const assets = [
  { path: "/", file: "index.html", contentType: "text/html; charset=utf-8" },
  { path: "/console/console.js", file: "console.js", contentType: "text/javascript; charset=utf-8" },
  { path: "/console/chart.js", file: "chart.js", contentType: "text/javascript; charset=utf-8" },
  { path: "/console/console.css", file: "console.css", contentType: "text/css; charset=utf-8" }
] as const

const headers = {
  // Small files that change with the service: always revalidated, never stale.
  "cache-control": "no-cache",
  // The page holds the admin token: it runs only its own script and talks only to this service.
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff"
} as const

export const ConsoleRoutesLive = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function*() {
    for (const asset of assets) {
      const body = yield* Effect.tryPromise(() => readFile(new URL(`./${asset.file}`, import.meta.url), "utf8"))
      yield* router.get(
        asset.path,
        Effect.succeed(HttpServerResponse.text(body, { contentType: asset.contentType, headers }))
      )
    }
  }).pipe(
    // Built without its assets (a compiled copy without them): the API still serves.
    Effect.catchAll((error) => Effect.logWarning("the operator console is unavailable: its files were not found", error))
  )
)
