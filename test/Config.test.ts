/**
 * Configuration as `AppConfig` reads it (SPEC §5): an empty value counts as
 * unset, for every variable it reads.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option, Redacted } from "effect"
import { AppConfig } from "../src/Config.js"

/** Every variable `AppConfig` reads. */
const variables = [
  "PORT",
  "HOST",
  "DATABASE_URL",
  "REDIS_URL",
  "REDIS_KEY_PREFIX",
  "NOTIFIER",
  "NOTIFIER_WEBHOOK_URL",
  "RATE_LIMIT_PER_SECOND",
  "NOTIFIER_RETRIES",
  "LEASE_SECONDS",
  "ADMIN_TOKEN",
  "JWT_SECRET",
  "LOG_FORMAT"
]

const read = (env: Record<string, string>) =>
  AppConfig.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

/** Secrets compare by what they hold. */
const comparable = (config: AppConfig) => ({
  ...config,
  redisUrl: Option.map(config.redisUrl, (url) => Redacted.value(url).href),
  adminToken: Option.map(config.adminToken, Redacted.value),
  jwtSecret: Option.map(config.jwtSecret, Redacted.value)
})

describe("AppConfig", () => {
  it.effect("every variable set to an empty value reads as if it were unset", () =>
    Effect.gen(function*() {
      const unset = yield* read({})
      const empty = yield* read(Object.fromEntries(variables.map((name) => [name, ""])))
      expect(comparable(empty)).toEqual(comparable(unset))
      // ... and, one at a time, each of them.
      for (const name of variables) {
        expect(comparable(yield* read({ [name]: "" })), name).toEqual(comparable(unset))
      }
    }))

  it.effect("a value of blanks counts as unset too", () =>
    Effect.gen(function*() {
      const unset = yield* read({})
      const blank = yield* read(Object.fromEntries(variables.map((name) => [name, "  "])))
      expect(comparable(blank)).toEqual(comparable(unset))
    }))
})
