/**
 * The service's configuration (SPEC §5), read once from the environment.
 * An empty variable counts as unset. A bad value fails with a `ConfigError`
 * naming the variable; `main.ts` prints it as one line and exits non-zero.
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { optionalString, parseUrl } from "./ConfigReaders.js"
import * as SendWindow from "./Dispatch/SendWindow.js"
import * as Tracing from "./Observability/Tracing.js"

/** Where the data lives: the embedded SQLite file, or a MySQL/MariaDB server. */
export type DatabaseConfig =
  | { readonly _tag: "Sqlite"; readonly filename: string }
  | { readonly _tag: "Mysql"; readonly url: Redacted.Redacted<URL> }

export type NotifierConfig =
  | { readonly _tag: "Sse" }
  | { readonly _tag: "Webhook"; readonly url: URL }

const withFallback = <A>(name: string, fallback: A, parse: (raw: string) => Either.Either<A, string>) =>
  optionalString(name).pipe(
    Config.mapOrFail((raw) =>
      Option.match(raw, {
        onNone: () => Either.right(fallback),
        onSome: (value) => Either.mapLeft(parse(value.trim()), (why) => ConfigError.InvalidData([name], why))
      })
    )
  )

const integerIn = (min: number, max: number) => (raw: string): Either.Either<number, string> => {
  if (!/^-?[0-9]+$/.test(raw)) return Either.left(`expected an integer, got "${raw}"`)
  const value = Number(raw)
  return value >= min && value <= max
    ? Either.right(value)
    : Either.left(`expected an integer from ${min} to ${max}, got ${raw}`)
}

const port = withFallback("PORT", 8080, integerIn(0, 65535))
const host = withFallback("HOST", "127.0.0.1", (raw) => Either.right(raw))

/**
 * The base of the unsubscribe links (SPEC §3.13). It must be an http(s) URL
 * without credentials, query or fragment, since `/unsubscribe/{token}` is
 * appended to it. A path is allowed, for a service behind a proxy that
 * serves it under a prefix.
 */
export const parsePublicUrl = (raw: string): Either.Either<URL, string> =>
  Either.flatMap(parseUrl(raw, ["http:", "https:"]), (url) => {
    if (url.username !== "" || url.password !== "") return Either.left("a public URL carries no user name or password")
    if (url.search !== "" || url.hash !== "") {
      return Either.left(`expected a base URL such as https://shop.example, without a query or fragment, got "${raw}"`)
    }
    return Either.right(url)
  })

/** `PUBLIC_URL`; unset or empty, `http://<HOST>:<PORT>`. */
export const publicUrl: Config.Config<URL> = Config.all({ host, port, raw: optionalString("PUBLIC_URL") }).pipe(
  Config.mapOrFail(({ host, port, raw }) =>
    Option.match(raw, {
      // An IPv6 address needs brackets in a URL.
      onNone: () => parsePublicUrl(`http://${host.includes(":") ? `[${host}]` : host}:${port}`),
      onSome: (value) => parsePublicUrl(value.trim())
    }).pipe(Either.mapLeft((why) => ConfigError.InvalidData(["PUBLIC_URL"], why)))
  )
)

export const parseDatabaseUrl = (raw: string): Either.Either<DatabaseConfig, string> => {
  if (raw.startsWith("sqlite:")) {
    const filename = raw.slice("sqlite:".length).replace(/^\/\/(?=\/)/, "")
    return filename === "" ? Either.left("sqlite: needs a file path, e.g. sqlite:./data/restock.sqlite")
      : Either.right({ _tag: "Sqlite", filename })
  }
  return Either.flatMap(parseUrl(raw, ["mysql:", "mariadb:"]), (url) => {
    if (url.hostname === "") return Either.left("the URL names no host")
    if (url.pathname.replace(/^\//, "") === "") return Either.left("the URL names no database, e.g. mysql://root@127.0.0.1:3306/restock")
    return Either.right({ _tag: "Mysql", url: Redacted.make(url) })
  })
}

export const database: Config.Config<DatabaseConfig> = withFallback(
  "DATABASE_URL",
  { _tag: "Sqlite", filename: "./data/restock.sqlite" } satisfies DatabaseConfig,
  parseDatabaseUrl
)

export const redisUrl: Config.Config<Option.Option<Redacted.Redacted<URL>>> = optionalString("REDIS_URL").pipe(
  Config.mapOrFail((raw) =>
    Option.match(raw, {
      onNone: () => Either.right(Option.none()),
      onSome: (value) =>
        parseUrl(value.trim(), ["redis:", "rediss:"]).pipe(
          Either.map((url) => Option.some(Redacted.make(url))),
          Either.mapLeft((why) => ConfigError.InvalidData(["REDIS_URL"], why))
        )
    })
  )
)

export const notifier: Config.Config<NotifierConfig> = Config.all({
  kind: withFallback("NOTIFIER", "sse" as "sse" | "webhook", (raw) =>
    raw === "sse" || raw === "webhook" ? Either.right(raw) : Either.left(`expected "sse" or "webhook", got "${raw}"`)),
  url: optionalString("NOTIFIER_WEBHOOK_URL")
}).pipe(
  Config.mapOrFail(({ kind, url }): Either.Either<NotifierConfig, ConfigError.ConfigError> => {
    if (kind === "sse") return Either.right({ _tag: "Sse" })
    return Option.match(url, {
      onNone: () =>
        Either.left(ConfigError.MissingData(["NOTIFIER_WEBHOOK_URL"], "NOTIFIER=webhook needs NOTIFIER_WEBHOOK_URL")),
      onSome: (raw) =>
        parseUrl(raw.trim(), ["http:", "https:"]).pipe(
          Either.map((parsed): NotifierConfig => ({ _tag: "Webhook", url: parsed })),
          Either.mapLeft((why) => ConfigError.InvalidData(["NOTIFIER_WEBHOOK_URL"], why))
        )
    })
  })
)

const durationUnits = { d: 86_400, h: 3_600, m: 60, s: 1 } as const

/**
 * A duration as operators write it (SPEC §5): a whole number and one unit,
 * `90d`, `12h`, `30m`, `45s`. At least a second: the pruner's schedule is a
 * tenth of it, and records are kept to the millisecond.
 */
export const parseRetention = (raw: string): Either.Either<Duration.Duration, string> => {
  const match = /^([0-9]{1,9})([dhms])$/.exec(raw)
  if (match === null) return Either.left(`expected a duration such as 90d, 12h, 30m or 45s, got "${raw}"`)
  const seconds = Number(match[1]) * durationUnits[match[2] as keyof typeof durationUnits]
  return seconds >= 1 ? Either.right(Duration.seconds(seconds)) : Either.left(`expected a duration of at least 1s, got "${raw}"`)
}

/** How long delivery records are kept (SPEC §3.15); unset or empty: forever. */
export const historyRetention: Config.Config<Option.Option<Duration.Duration>> = optionalString("HISTORY_RETENTION").pipe(
  Config.mapOrFail((raw) =>
    Option.match(raw, {
      onNone: () => Either.right(Option.none()),
      onSome: (value) =>
        parseRetention(value.trim()).pipe(
          Either.map(Option.some),
          Either.mapLeft((why) => ConfigError.InvalidData(["HISTORY_RETENTION"], why))
        )
    })
  )
)

/**
 * The send window (SPEC §3.12): `SEND_WINDOW` in `SEND_WINDOW_TIMEZONE`
 * (default UTC); unset, sends may start at any time. A zone given without a
 * window is still checked, so a typo does not wait for the day a window is set.
 */
export const sendWindow: Config.Config<Option.Option<SendWindow.SendWindow>> = Config.all({
  window: optionalString("SEND_WINDOW"),
  timeZone: withFallback("SEND_WINDOW_TIMEZONE", "UTC", (raw) => Either.map(SendWindow.parseTimeZone(raw), () => raw))
}).pipe(
  Config.mapOrFail(({ timeZone, window }) =>
    Option.match(window, {
      onNone: () => Either.right(Option.none()),
      onSome: (value) =>
        SendWindow.parse(value.trim(), timeZone).pipe(
          Either.map(Option.some),
          Either.mapLeft((why) => ConfigError.InvalidData(["SEND_WINDOW"], why))
        )
    })
  )
)

/** Everything `main.ts` needs to compose the service. */
export const AppConfig = Config.all({
  port,
  host,
  publicUrl,
  database,
  redisUrl,
  // Prepended to every Redis key and channel: instances sharing one limit, stock and
  // fan-out use the same prefix; separate deployments (or tests) on one Redis use their own.
  redisKeyPrefix: withFallback("REDIS_KEY_PREFIX", "restock:", (raw) => Either.right(raw)),
  notifier,
  rateLimitPerSecond: withFallback("RATE_LIMIT_PER_SECOND", 500, integerIn(1, 1_000_000)),
  notifierRetries: withFallback("NOTIFIER_RETRIES", 3, integerIn(0, 20)),
  // Advanced: how long a dispatcher's lease on a round holds without a heartbeat, i.e. how
  // long after a crash its round becomes resumable. Shorter detects a dead instance sooner
  // but lets a stalled one (a long GC or database pause) lose its round.
  leaseSeconds: withFallback("LEASE_SECONDS", 10, integerIn(1, 3600)),
  historyRetention,
  sendWindow,
  adminToken: optionalString("ADMIN_TOKEN").pipe(Config.map(Option.map(Redacted.make))),
  jwtSecret: optionalString("JWT_SECRET").pipe(Config.map(Option.map(Redacted.make))),
  // OpenTelemetry's own variables, read as its SDKs read them (`Observability/Tracing.ts`).
  tracing: Tracing.config,
  logFormat: withFallback("LOG_FORMAT", "pretty" as "pretty" | "json", (raw) =>
    raw === "pretty" || raw === "json" ? Either.right(raw) : Either.left(`expected "pretty" or "json", got "${raw}"`))
})
export type AppConfig = Config.Config.Success<typeof AppConfig>
