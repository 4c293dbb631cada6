/**
 * Bad configuration never starts a half-working service: the process prints
 * one line naming the variable and exits non-zero (SPEC §5).
 */
import { ConfigProvider, Duration, Effect, Either, Option } from "effect"
import { describe, expect, it } from "vitest"
import { historyRetention } from "../../src/Config.js"
import { runEntry } from "../support/Process.js"

const start = (env: Record<string, string>) => runEntry("src/main.ts", { PORT: "0", ...env })

/** The lines the process wrote to stderr, without blank ones. */
const errorLines = (stderr: string) => stderr.split("\n").filter((line) => line.trim() !== "")

describe("start-up with bad configuration", () => {
  const cases: ReadonlyArray<readonly [string, Record<string, string>, RegExp]> = [
    ["an invalid number", { RATE_LIMIT_PER_SECOND: "fast" }, /RATE_LIMIT_PER_SECOND.*expected an integer/],
    ["a number out of range", { PORT: "70000" }, /PORT.*from 0 to 65535/],
    ["a malformed DATABASE_URL", { DATABASE_URL: "postgres//nowhere" }, /DATABASE_URL/],
    ["a DATABASE_URL without a database", { DATABASE_URL: "mysql://root@127.0.0.1:3306" }, /DATABASE_URL.*no database/],
    ["an unparsable REDIS_URL", { REDIS_URL: "redis:// bad host" }, /REDIS_URL/],
    ["NOTIFIER=webhook without its URL", { NOTIFIER: "webhook" }, /NOTIFIER_WEBHOOK_URL/],
    ["an unknown NOTIFIER", { NOTIFIER: "pigeon" }, /NOTIFIER.*"sse" or "webhook"/],
    ["a malformed NOTIFIER_WEBHOOK_URL", { NOTIFIER: "webhook", NOTIFIER_WEBHOOK_URL: "not a url" }, /NOTIFIER_WEBHOOK_URL/],
    ["a malformed PUBLIC_URL", { PUBLIC_URL: "shop.example" }, /PUBLIC_URL.*not a valid URL/],
    ["a PUBLIC_URL that is not http(s)", { PUBLIC_URL: "ftp://shop.example" }, /PUBLIC_URL.*http:\/\/ or https:\/\//],
    ["a PUBLIC_URL with a query", { PUBLIC_URL: "https://shop.example/?ref=mail" }, /PUBLIC_URL.*without a query/],
    ["a negative NOTIFIER_RETRIES", { NOTIFIER_RETRIES: "-1" }, /NOTIFIER_RETRIES/],
    ["NOTIFIER_RETRIES that is no number", { NOTIFIER_RETRIES: "three" }, /NOTIFIER_RETRIES.*expected an integer/],
    ["a limit of 0", { RATE_LIMIT_PER_SECOND: "0" }, /RATE_LIMIT_PER_SECOND/],
    ["a negative limit", { RATE_LIMIT_PER_SECOND: "-500" }, /RATE_LIMIT_PER_SECOND/],
    ["a HISTORY_RETENTION without a unit", { HISTORY_RETENTION: "90" }, /HISTORY_RETENTION.*a duration such as 90d/],
    ["a HISTORY_RETENTION in an unknown unit", { HISTORY_RETENTION: "2w" }, /HISTORY_RETENTION.*"2w"/],
    ["a HISTORY_RETENTION of several parts", { HISTORY_RETENTION: "1h30m" }, /HISTORY_RETENTION.*"1h30m"/],
    ["a negative HISTORY_RETENTION", { HISTORY_RETENTION: "-5d" }, /HISTORY_RETENTION.*"-5d"/],
    ["a HISTORY_RETENTION of zero", { HISTORY_RETENTION: "0s" }, /HISTORY_RETENTION.*at least 1s/],
    ["a SEND_WINDOW that is no window", { SEND_WINDOW: "8-21" }, /SEND_WINDOW.*HH:MM-HH:MM.*"8-21"/],
    ["a SEND_WINDOW past the day's end", { SEND_WINDOW: "08:00-25:00" }, /SEND_WINDOW.*HH:MM-HH:MM/],
    ["a SEND_WINDOW that starts where it ends", { SEND_WINDOW: "08:00-08:00" }, /SEND_WINDOW.*different times/],
    [
      "an unknown SEND_WINDOW_TIMEZONE",
      { SEND_WINDOW: "08:00-21:00", SEND_WINDOW_TIMEZONE: "Mars/Olympus_Mons" },
      /SEND_WINDOW_TIMEZONE.*IANA time zone.*Mars\/Olympus_Mons/
    ],
    [
      "an unknown SEND_WINDOW_TIMEZONE without a window",
      { SEND_WINDOW_TIMEZONE: "Europe/Berln" },
      /SEND_WINDOW_TIMEZONE.*"Europe\/Berln"/
    ]
  ]
  for (const [what, env, expected] of cases) {
    it(`${what}: one line naming the variable, exit 1`, async () => {
      const finished = await start(env)
      expect(finished.code).toBe(1)
      const lines = errorLines(finished.stderr)
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^restock: invalid configuration: /)
      expect(lines[0]).toMatch(expected)
    }, 30_000)
  }

  it("an unreachable database: one line naming DATABASE_URL after a bounded retry, exit 1", async () => {
    // Port 9 (discard) on loopback: nothing listens there.
    const finished = await start({ DATABASE_URL: "mysql://root@127.0.0.1:9/restock" }, )
    expect(finished.code).toBe(1)
    const lines = errorLines(finished.stderr)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^restock: cannot start: DATABASE_URL/)
  }, 60_000)

  it("an unreachable Redis: one line naming REDIS_URL, exit 1", async () => {
    const finished = await start({ DATABASE_URL: "sqlite::memory:", REDIS_URL: "redis://127.0.0.1:9" })
    expect(finished.code).toBe(1)
    const lines = errorLines(finished.stderr)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^restock: cannot start: REDIS_URL/)
  }, 60_000)

  it("an empty value counts as unset", async () => {
    // Every variable empty: the embedded defaults, on a database file we can throw away.
    const finished = await runEntry("src/migrate.ts", {
      DATABASE_URL: "sqlite::memory:",
      PORT: "",
      REDIS_URL: "",
      NOTIFIER: "",
      RATE_LIMIT_PER_SECOND: "",
      NOTIFIER_RETRIES: "",
      SEND_WINDOW: "",
      SEND_WINDOW_TIMEZONE: ""
    })
    expect(finished.stderr).toBe("")
    expect(finished.code).toBe(0)
  }, 30_000)
})

describe("HISTORY_RETENTION", () => {
  const read = (value: string | undefined) =>
    Effect.runSync(
      Effect.either(historyRetention).pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map(value === undefined ? [] : [["HISTORY_RETENTION", value]])))
      )
    )

  it("reads a whole number of days, hours, minutes or seconds", () => {
    const cases: ReadonlyArray<readonly [string, Duration.Duration]> = [
      ["90d", Duration.days(90)],
      ["12h", Duration.hours(12)],
      ["30m", Duration.minutes(30)],
      ["45s", Duration.seconds(45)],
      [" 7d ", Duration.days(7)]
    ]
    for (const [raw, expected] of cases) {
      const read_ = read(raw)
      expect(Either.isRight(read_) && Option.isSome(read_.right) && Duration.equals(read_.right.value, expected), raw).toBe(true)
    }
  })

  it("unset or empty: records are kept forever", () => {
    for (const raw of [undefined, "", "   "]) expect(read(raw)).toEqual(Either.right(Option.none()))
  })

  it("anything else fails naming the variable", () => {
    for (const raw of ["90", "d", "1.5h", "2w", "1h30m", "-5d", "0s", "forever"]) {
      const read_ = read(raw)
      expect(Either.isLeft(read_), raw).toBe(true)
      if (Either.isLeft(read_)) expect(String(read_.left), raw).toMatch(/HISTORY_RETENTION/)
    }
  })
})
