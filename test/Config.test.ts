/**
 * Configuration as `AppConfig` reads it (SPEC §5): an empty value counts as
 * unset, for every variable it reads.
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Option, Redacted } from "effect"
import { AppConfig, publicUrl } from "../src/Config.js"

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
  "PUBLIC_URL",
  "LOG_FORMAT"
]

const read = (env: Record<string, string>) =>
  AppConfig.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

/** Secrets compare by what they hold. */
const comparable = (config: AppConfig) => ({
  ...config,
  redisUrl: Option.map(config.redisUrl, (url) => Redacted.value(url).href),
  publicUrl: config.publicUrl.href,
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

describe("PUBLIC_URL", () => {
  const readPublicUrl = (env: Record<string, string>) =>
    Effect.either(publicUrl).pipe(
      Effect.map(Either.map((url) => url.href)),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
    )

  it.effect("unset or empty: http://<HOST>:<PORT>", () =>
    Effect.gen(function*() {
      expect(yield* readPublicUrl({})).toEqual(Either.right("http://127.0.0.1:8080/"))
      expect(yield* readPublicUrl({ PUBLIC_URL: " ", HOST: "0.0.0.0", PORT: "9000" })).toEqual(Either.right("http://0.0.0.0:9000/"))
      expect(yield* readPublicUrl({ HOST: "::1" })).toEqual(Either.right("http://[::1]:8080/"))
    }))

  it.effect("an http(s) URL, with a path prefix or not", () =>
    Effect.gen(function*() {
      expect(yield* readPublicUrl({ PUBLIC_URL: "https://shop.example" })).toEqual(Either.right("https://shop.example/"))
      expect(yield* readPublicUrl({ PUBLIC_URL: " https://shop.example/restock/ " }))
        .toEqual(Either.right("https://shop.example/restock/"))
    }))

  it.effect("anything else fails naming the variable", () =>
    Effect.gen(function*() {
      const bad = [
        "shop.example",
        "not a url",
        "ftp://shop.example",
        "mailto:shop@shop.example",
        "https://user:secret@shop.example",
        "https://shop.example/?ref=mail",
        "https://shop.example/#top"
      ]
      for (const raw of bad) {
        const read_ = yield* readPublicUrl({ PUBLIC_URL: raw })
        expect(Either.isLeft(read_), raw).toBe(true)
        if (Either.isLeft(read_)) expect(String(read_.left), raw).toMatch(/PUBLIC_URL/)
      }
    }))
})
