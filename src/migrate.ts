/**
 * `npm run migrate`: applies the schema migrations to the database of
 * `DATABASE_URL` (the embedded SQLite file when unset) and exits. The service
 * does the same at start-up; this is for operators who migrate ahead of a
 * deploy. Fails with one line and exit 1.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as ConfigError from "effect/ConfigError"
import * as Effect from "effect/Effect"
import * as Config from "./Config.js"
import { StorageUnavailable } from "./Domain/Errors.js"
import * as Database from "./Repo/Database.js"
import * as Migrate from "./Repo/Migrate.js"

const program = Effect.gen(function*() {
  const config = yield* Config.database
  const where = Database.describe(config)
  const applied = yield* Migrate.migrate.pipe(
    Effect.provide(Database.clientLayer(config)),
    Effect.mapError((error) => new StorageUnavailable({ message: error.message.startsWith("DATABASE_URL") ? error.message : `DATABASE_URL (${where}): ${error.message}` }))
  )
  yield* Effect.sync(() =>
    console.log(
      applied.length === 0
        ? `restock: ${where}: schema up to date`
        : `restock: ${where}: applied ${applied.map(([id, name]) => `${id}_${name}`).join(", ")}`
    )
  )
})

program.pipe(
  Effect.tapError((error) =>
    Effect.sync(() =>
      console.error(
        ConfigError.isConfigError(error)
          ? `restock: invalid configuration: ${String(error)}`
          : `restock: cannot migrate: ${error.message}`
      )
    )
  ),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
