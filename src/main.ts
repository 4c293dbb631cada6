/**
 * Runs restock: reads the configuration, composes the service (`Layers.ts`)
 * and serves it until SIGTERM/SIGINT, which close every layer in order: the
 * HTTP edge stops accepting and ends SSE streams, running rounds halt and are
 * left resumable, connections close. A bad configuration or a database that
 * cannot be reached at start-up ends the process with one line and exit 1.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { AppConfig } from "./Config.js"
import { AuthConfig } from "./Http/Auth/Config.js"
import { serve } from "./Http/Server.js"
import { services } from "./Layers.js"
import * as Tracing from "./Observability/Tracing.js"

/** One line for a reason the service cannot start. */
const startupFailure = (error: unknown): string => {
  if (ConfigError.isConfigError(error)) {
    const lines: Array<string> = []
    const walk = (e: ConfigError.ConfigError): void => {
      switch (e._op) {
        case "And":
        case "Or":
          walk(e.left)
          walk(e.right)
          return
        case "InvalidData":
        case "MissingData":
        case "SourceUnavailable":
        case "Unsupported":
          lines.push(`${e.path.join(".")}: ${e.message}`)
      }
    }
    walk(error)
    return `restock: invalid configuration: ${lines.join("; ")}`
  }
  const message = typeof error === "object" && error !== null && "message" in error ? String(error.message) : String(error)
  return `restock: cannot start: ${message}`
}

const main = Effect.gen(function*() {
  const config = yield* AppConfig
  // LOG_FORMAT=json: one JSON object per line, with the product and round annotated.
  const logger = config.logFormat === "json" ? Logger.json : Logger.pretty
  return yield* Effect.gen(function*() {
    yield* Effect.logInfo(`restock starting on http://${config.host}:${config.port} (console at /, API docs at /docs)`)
    if (config.publicUrl.port === "0") {
      yield* Effect.logWarning("PUBLIC_URL names port 0: unsubscribe links will not reach this service; set PUBLIC_URL")
    }
    // One JWT secret, generated or not, for the user tokens the edge verifies and the unsubscribe links the dispatch signs.
    const auth = yield* AuthConfig.fromSecrets(config)
    const app = serve({ host: config.host, port: config.port }).pipe(
      Layer.provide(Layer.succeed(AuthConfig, auth)),
      Layer.provide(services({ ...config, jwtSecret: Option.some(auth.jwtSecret) })),
      // Below everything, so every span is the tracer's: OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, none otherwise.
      Layer.provide(Option.match(config.tracing, { onNone: () => Layer.empty, onSome: Tracing.layer }))
    )
    return yield* Layer.launch(app)
  }).pipe(Effect.provide(logger))
}).pipe(
  Effect.tapError((error) => Effect.sync(() => console.error(startupFailure(error))))
)

main.pipe(
  Logger.withMinimumLogLevel(LogLevel.Info),
  // The logger is main's choice (LOG_FORMAT): runMain's own pretty logger would print every line a second time.
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
