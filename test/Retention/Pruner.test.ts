/**
 * The retention's contract on MySQL/MariaDB and on SQLite, and what only a
 * server with concurrent connections can show: two instances (two pools)
 * pruning at once, and a pruner interrupted while its batch waits inside its
 * transaction.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Duration, Effect, Fiber, Layer, Redacted, TestClock } from "effect"
import * as Database from "../../src/Repo/Database.js"
import { Repo } from "../../src/Repo/Repo.js"
import * as SqlRepo from "../../src/Repo/Sql.js"
import * as Pruner from "../../src/Retention/Pruner.js"
import { base, prunerContract, seedProduct, seedRecords } from "../contracts/Pruner.contract.js"
import { eventually } from "../support/Http.js"
import { layerMysql, layerSqlite, TestDatabase } from "../support/Mysql.js"

const onMysql = SqlRepo.layer.pipe(Layer.provideMerge(layerMysql))

prunerContract("MySQL/MariaDB", onMysql)
prunerContract("SQLite", SqlRepo.layer.pipe(Layer.provideMerge(layerSqlite)))

const settings: Pruner.PrunerSettings = { ...Pruner.settingsFor(Duration.hours(1)), pauseBetweenBatches: Duration.zero }

const count = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ n: number }>`SELECT COUNT(*) AS n FROM product_user_notification_history`).pipe(
  Effect.map((rows) => Number(rows[0]!.n)),
  Effect.orDie
)

describe("the retention on MySQL/MariaDB, several connections", () => {
  it.scoped("two instances (two pools on one database) prune at once: every record deleted once, by one of them", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(base)
      yield* seedProduct(1, ["COMPLETED"])
      yield* seedRecords(1, 1, { count: 5_000, sentAt: new Date(base - 3 * 3_600_000), spread: true })
      const { config } = yield* TestDatabase
      const instance = SqlRepo.layer.pipe(Layer.provideMerge(Database.layer(config)), Layer.orDie)
      // Each instance passes again and again, as its schedule would, on its own pool.
      const passes = (times: number) =>
        Effect.gen(function*() {
          const pruner = yield* Pruner.make(settings)
          let deleted = 0
          let held = 0
          for (let i = 0; i < times; i++) {
            const pass = yield* pruner.pass
            deleted += pass.deleted
            if (pass.pruned) held += 1
          }
          return { deleted, held }
        }).pipe(Effect.provide(instance))
      const [a, b] = yield* Effect.all([passes(3), passes(3)], { concurrency: 2 })
      expect(a.deleted + b.deleted).toBe(5_000)
      // The lease stayed with one of them throughout.
      expect([a.held, b.held].sort()).toEqual([0, 3])
      expect(yield* count).toBe(0)
    }).pipe(Effect.provide(onMysql), Effect.orDie), 120_000)

  it.scoped("a pruner interrupted inside its batch's transaction commits nothing: the records, watermark and flags stay", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(base)
      yield* seedProduct(1, ["COMPLETED"])
      yield* seedRecords(1, 1, { count: 800, sentAt: new Date(base - 3 * 3_600_000), spread: true })
      const sql = yield* SqlClient.SqlClient
      const repo = yield* Repo
      const { config } = yield* TestDatabase
      // Another connection holds one of the batch's rows locked: the batch's DELETE waits for it,
      // inside the transaction that already moved the lease.
      const blocker = yield* Layer.build(Database.clientLayer(config).pipe(Layer.orDie))
      const other = Context.get(blocker, SqlClient.SqlClient)
      const holding = yield* Deferred.make<void>()
      const locked = yield* Effect.forkScoped(other.withTransaction(Effect.gen(function*() {
        yield* other`SELECT id FROM product_user_notification_history ORDER BY id DESC LIMIT 1 FOR UPDATE`
        yield* Deferred.succeed(holding, undefined)
        yield* Effect.never
      })).pipe(Effect.orDie))
      yield* Deferred.await(holding)
      // Whatever happens below, the lock goes first: a pruner waiting on it could not be stopped.
      yield* Effect.addFinalizer(() => Fiber.interrupt(locked))

      const pruner = yield* Pruner.make(settings)
      const pass = yield* Effect.forkScoped(pruner.pass)
      // The statements of this database that wait for a row lock (the server may be serving others).
      const database = new URL(Redacted.value((config as { url: Redacted.Redacted<URL> }).url).href).pathname.slice(1)
      const waiting = Effect.orDie(other.unsafe<{ n: number }>(
        `SELECT COUNT(*) AS n FROM information_schema.processlist
         WHERE db = '${database}' AND info LIKE 'DELETE FROM product_user_notification_history%'`
      ).unprepared).pipe(Effect.map((rows) => Number(rows[0]!.n)))
      yield* eventually("the batch's DELETE waiting for the lock", waiting, (n) => n === 1, "10 seconds")
      // The kill: the pruner is interrupted mid-batch, then the lock goes (the DELETE it waited for returns).
      yield* Fiber.interruptFork(pass)
      yield* Fiber.interrupt(locked)
      yield* Fiber.await(pass)
      expect(yield* count).toBe(800)
      expect(yield* repo.prunedThrough).toBe(0)
      const [flag] = yield* sql<{ p: number }>`SELECT records_pruned AS p FROM product_notification_history`
      expect(Number(flag!.p)).toBe(0)

      // Its lease lapses; the next pruner does the whole of it.
      yield* TestClock.adjust(Duration.sum(settings.leaseDuration, Duration.millis(1)))
      expect(yield* (yield* Pruner.make(settings)).pass).toMatchObject({ pruned: true, deleted: 800 })
      expect(yield* count).toBe(0)
    }).pipe(Effect.provide(onMysql), Effect.orDie), 120_000)
})

describe("the pruner's share of the time while a round is sending", () => {
  const defaults = Pruner.settingsFor(Duration.hours(1))
  it("pauses after a batch so that batches take at most the share; no round sending: the plain pause", () => {
    const tenth = { ...defaults, pauseBetweenBatches: Duration.millis(50), whileSending: { batchSize: 200, share: 0.1 } }
    expect(Duration.toMillis(Pruner.pauseAfterBatch(tenth, 50, true))).toBeCloseTo(450, 6)
    expect(Duration.toMillis(Pruner.pauseAfterBatch(tenth, 200, true))).toBeCloseTo(1_800, 6)
    // A quick batch still pauses the plain pause at least.
    expect(Duration.toMillis(Pruner.pauseAfterBatch(tenth, 1, true))).toBe(50)
    expect(Duration.toMillis(Pruner.pauseAfterBatch(tenth, 200, false))).toBe(50)
    const half = { ...tenth, whileSending: { batchSize: 200, share: 0.5 } }
    expect(Duration.toMillis(Pruner.pauseAfterBatch(half, 200, true))).toBeCloseTo(200, 6)
  })
})
