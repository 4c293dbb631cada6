/**
 * Start-up: the database of `DATABASE_URL` is opened (SQLite: created, its
 * directory too) and migrated, or start-up fails with one clear error naming
 * `DATABASE_URL`, after a bounded retry when the server may still be starting.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Logger, Redacted, TestClock } from "effect"
import { existsSync } from "node:fs"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { DatabaseConfig } from "../../src/Config.js"
import * as Database from "../../src/Repo/Database.js"
import { serverUrl } from "../support/Mysql.js"

const temporaryDirectory = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "restock-test-"))),
  (directory) => Effect.promise(() => rm(directory, { recursive: true, force: true }))
)

const failureOf = (config: DatabaseConfig) =>
  Effect.scoped(Layer.build(Database.layer(config))).pipe(Effect.flip)

/** Real time for I/O to complete while the test clock stands still. */
const realPause = Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 25)))

describe("Database", () => {
  it.scoped("creates the SQLite file and its directory, in WAL mode with a busy timeout, migrated", () =>
    Effect.gen(function*() {
      const filename = join(yield* temporaryDirectory, "nested", "deeper", "restock.sqlite")
      const settings = yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [journal] = yield* sql<{ journal_mode: string }>`PRAGMA journal_mode`
        const [timeout] = yield* sql<{ timeout: number }>`PRAGMA busy_timeout`
        const tables = yield* sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'product%' ORDER BY name`
        return { journal: journal!.journal_mode, timeout: timeout!.timeout, tables: tables.map((t) => t.name) }
      }).pipe(Effect.provide(Database.layer({ _tag: "Sqlite", filename })))
      expect(existsSync(filename)).toBe(true)
      expect(settings).toEqual({
        journal: "wal",
        timeout: 5000,
        tables: ["product", "product_notification_history", "product_user_notification", "product_user_notification_history"]
      })
    }))

  it.scoped("a SQLite file that cannot be created fails naming DATABASE_URL", () =>
    Effect.gen(function*() {
      // Its "directory" is a file.
      const blocker = join(yield* temporaryDirectory, "a-file")
      yield* Effect.promise(() => writeFile(blocker, ""))
      const filename = join(blocker, "restock.sqlite")
      const error = yield* failureOf({ _tag: "Sqlite", filename })
      expect(error._tag).toBe("StorageUnavailable")
      expect(error.message).toMatch(/^DATABASE_URL \(sqlite:.*a-file\/restock\.sqlite\): cannot open the database: .*(ENOTDIR|EEXIST)/)
    }))

  it.scoped("a SQLite path that names a directory fails naming DATABASE_URL", () =>
    Effect.gen(function*() {
      const directory = yield* temporaryDirectory
      const error = yield* failureOf({ _tag: "Sqlite", filename: directory })
      expect(error._tag).toBe("StorageUnavailable")
      expect(error.message).toMatch(/^DATABASE_URL \(sqlite:.*\): cannot open the database: /)
    }))

  it.effect("a MySQL database that does not exist fails at once, naming DATABASE_URL and the database", () =>
    Effect.gen(function*() {
      const url = new URL(yield* serverUrl)
      url.pathname = "/restock_test_does_not_exist"
      const error = yield* failureOf({ _tag: "Mysql", url: Redacted.make(url) })
      expect(error.message).toMatch(/^DATABASE_URL \(.*restock_test_does_not_exist\): database "restock_test_does_not_exist" does not exist/)
    }))

  it.effect("an unreachable MySQL server is retried for a bounded time, then fails naming DATABASE_URL without the password", () =>
    Effect.gen(function*() {
      const warnings: Array<string> = []
      const logger = Logger.make(({ message }) => {
        warnings.push(String(message))
      })
      // Port 1 on the loopback refuses at once.
      const url = new URL("mysql://restock:s3cret@127.0.0.1:1/restock")
      const fiber = yield* failureOf({ _tag: "Mysql", url: Redacted.make(url) }).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
        Effect.fork
      )
      for (let step = 0; step < 200 && (yield* Fiber.poll(fiber))._tag === "None"; step++) {
        yield* realPause
        yield* TestClock.adjust("250 millis")
      }
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isSuccess(exit)).toBe(true)
      const error = Exit.isSuccess(exit) ? exit.value : undefined
      expect(error?.message).toMatch(/^DATABASE_URL \(mysql:\/\/restock@127\.0\.0\.1:1\/restock\): cannot connect: .*ECONNREFUSED/)
      expect(error?.message).not.toContain("s3cret")
      // One attempt and nine retries.
      expect(warnings.filter((w) => w.includes("not reachable"))).toHaveLength(10)
    }))
})
