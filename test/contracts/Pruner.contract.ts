/**
 * What the retention must do on every database restock runs on (SPEC §3.15–
 * §3.16), run against MySQL/MariaDB and SQLite: expiry by `sent_at`, batches
 * of the size asked (never over 1,000), the records of resumable rounds kept,
 * two pruners at once, a batch that dies half-way, the watermark and flags
 * across a restart, and the pruner's own schedule in virtual time.
 *
 * Pruning works on the whole table, so every scenario gets a database of its
 * own (`freshRepo` builds one per use). Rows are seeded straight into the
 * tables: what the pruner sees is the schema, not how rows got there.
 */
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Metric, type Scope, TestClock } from "effect"
import { dialectOf } from "../../src/Repo/Dialect.js"
import * as Database from "../../src/Repo/Database.js"
import { Repo } from "../../src/Repo/Repo.js"
import * as SqlRepo from "../../src/Repo/Sql.js"
import * as Metrics from "../../src/Observability/Metrics.js"
import * as Pruner from "../../src/Retention/Pruner.js"
import { TestDatabase } from "../support/Mysql.js"
import { eventually } from "../support/Http.js"

/** The instant the scenarios run at (TestClock is set to it), and offsets from it. */
export const base = Date.UTC(2031, 4, 6, 12, 0, 0, 0)
const at = (offsetMs: number) => new Date(base + offsetMs)
const hour = 3_600_000

type Status = "IN_PROGRESS" | "CANCELED_BY_SOLD_OUT" | "CANCELED_BY_ERROR" | "COMPLETED"

/** A product whose rounds are `statuses` (the last one its latest). */
export const seedProduct = (productId: number, statuses: ReadonlyArray<Status>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = dialectOf(sql).timestamp(at(-48 * hour))
    yield* sql`INSERT INTO product ${
      sql.insert({ id: productId, name: `P${productId}`, restock_round: statuses.length, stock: 5, stock_status: "IN_STOCK", created_at: t, updated_at: t })
    }`
    for (const [index, status] of statuses.entries()) {
      yield* sql`INSERT INTO product_notification_history ${
        sql.insert({
          product_id: productId,
          restock_round: index + 1,
          status,
          sent_count: 0,
          started_at: t,
          updated_at: t,
          lease_owner: status === "IN_PROGRESS" ? "someone" : null,
          lease_expires_at: status === "IN_PROGRESS" ? dialectOf(sql).timestamp(at(hour)) : null
        })
      }`
    }
  }).pipe(Effect.orDie)

/** `count` records of a round, users `firstUser…`, sent at `sentAt` (one millisecond apart when `spread`). */
export const seedRecords = (
  productId: number,
  restockRound: number,
  options: { readonly count: number; readonly sentAt: Date; readonly firstUser?: number; readonly spread?: boolean }
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const dialect = dialectOf(sql)
    const first = options.firstUser ?? 1
    for (let offset = 0; offset < options.count; offset += 1_000) {
      const rows = Array.from({ length: Math.min(1_000, options.count - offset) }, (_, i) => ({
        product_id: productId,
        user_id: first + offset + i,
        restock_round: restockRound,
        sent_at: dialect.timestamp(new Date(options.sentAt.getTime() + (options.spread ? offset + i : 0)))
      }))
      yield* sql`INSERT INTO product_user_notification_history ${sql.insert(rows)}`
    }
  }).pipe(Effect.orDie)

const countRecords = (where = "1 = 1") =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ n: number }>(`SELECT COUNT(*) AS n FROM product_user_notification_history WHERE ${where}`)).pipe(
    Effect.map((rows) => Number(rows[0]!.n)),
    Effect.orDie
  )

const maxRecordId = (where: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ n: number | null }>(`SELECT MAX(id) AS n FROM product_user_notification_history WHERE ${where}`)).pipe(
    Effect.map((rows) => Number(rows[0]!.n ?? 0)),
    Effect.orDie
  )

/** The rounds flagged `records_pruned`, as `product:round`. */
const prunedRounds = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ p: number; r: number }>`SELECT product_id AS p, restock_round AS r FROM product_notification_history
    WHERE records_pruned = 1 ORDER BY product_id, restock_round`).pipe(
  Effect.map((rows) => rows.map((row) => `${row.p}:${row.r}`)),
  Effect.orDie
)

const settings = (overrides: Partial<Pruner.PrunerSettings> = {}): Pruner.PrunerSettings => ({
  ...Pruner.settingsFor(Duration.hours(1)),
  pauseBetweenBatches: Duration.zero,
  ...overrides
})

const atBase = TestClock.setTime(base)

export const prunerContract = (
  name: string,
  /** A fresh, migrated database per use, with the SQL `Repo` over it. */
  freshRepo: Layer.Layer<Repo | SqlClient.SqlClient | TestDatabase>
) =>
  describe(`the retention on ${name}`, () => {
    const scenario = (title: string, body: Effect.Effect<void, unknown, Repo | SqlClient.SqlClient | TestDatabase | Scope.Scope>) =>
      it.scoped(title, () => body.pipe(Effect.provide(freshRepo), Effect.orDie), 120_000)

    scenario(
      "deletes the records sent before now − retention, and only those",
      Effect.gen(function*() {
        yield* atBase
        yield* seedProduct(1, ["COMPLETED", "COMPLETED"])
        yield* seedRecords(1, 1, { count: 250, sentAt: at(-2 * hour) })
        yield* seedRecords(1, 1, { count: 1, sentAt: at(-hour - 1), firstUser: 1_000 })
        yield* seedRecords(1, 2, { count: 1, sentAt: at(-hour), firstUser: 1 })
        yield* seedRecords(1, 2, { count: 40, sentAt: at(-hour + 1), firstUser: 2 })
        const pruner = yield* Pruner.make(settings())
        const pass = yield* pruner.pass
        expect(pass).toMatchObject({ pruned: true, deleted: 251 })
        // Exactly at the cutoff is not older than the retention.
        expect(yield* countRecords()).toBe(41)
        expect(yield* countRecords("restock_round = 1")).toBe(0)
        expect(yield* prunedRounds).toEqual(["1:1"])
        // The hour goes by: the records of round 2 expire in their turn.
        yield* TestClock.adjust(Duration.millis(2))
        expect((yield* pruner.pass).deleted).toBe(41)
        expect(yield* countRecords()).toBe(0)
      })
    )

    scenario(
      "a batch reads and deletes at most the batch size, and never more than 1,000",
      Effect.gen(function*() {
        yield* atBase
        yield* seedProduct(1, ["COMPLETED"])
        yield* seedRecords(1, 1, { count: 1_250, sentAt: at(-2 * hour), spread: true })
        const repo = yield* Repo
        const pruner = yield* Pruner.make(settings({ batchSize: 100 }))
        // The lease first (a pass claims it); then single batches.
        expect(yield* repo.claimPruning({ owner: pruner.owner, expiresAt: at(hour) }, at(0))).toBe(true)
        const options = { cutoff: at(-hour), after: null, leaseExpiresAt: at(hour) }
        expect((yield* repo.pruneHistory(pruner.owner, { ...options, limit: 100 })).deleted).toBe(100)
        expect(yield* countRecords()).toBe(1_150)
        const big = yield* repo.pruneHistory(pruner.owner, { ...options, limit: 5_000 })
        expect({ examined: big.examined, deleted: big.deleted }).toEqual({ examined: 1_000, deleted: 1_000 })
        expect(yield* countRecords()).toBe(150)
        // A pass of batches of 100 over what is left: two batches.
        expect(yield* pruner.pass).toMatchObject({ deleted: 150, batches: 2 })
      })
    )

    scenario(
      "keeps the records of each product's latest round while it can be resumed, and prunes them once it cannot",
      Effect.gen(function*() {
        yield* atBase
        yield* seedProduct(1, ["COMPLETED", "CANCELED_BY_ERROR"]) // latest errored: resumable
        yield* seedProduct(2, ["COMPLETED", "IN_PROGRESS"]) // being sent
        yield* seedProduct(3, ["CANCELED_BY_ERROR", "COMPLETED"]) // the errored round is no longer the latest
        yield* seedProduct(4, ["CANCELED_BY_SOLD_OUT"]) // sold out: not resumable
        // The kept records are the oldest, more than a batch of them: the pass must get past them.
        yield* seedRecords(1, 2, { count: 35, sentAt: at(-5 * hour), spread: true })
        yield* seedRecords(2, 2, { count: 12, sentAt: at(-4 * hour), spread: true })
        yield* seedRecords(1, 1, { count: 7, sentAt: at(-3 * hour) })
        yield* seedRecords(2, 1, { count: 7, sentAt: at(-3 * hour) })
        yield* seedRecords(3, 1, { count: 9, sentAt: at(-3 * hour) })
        yield* seedRecords(3, 2, { count: 9, sentAt: at(-3 * hour) })
        yield* seedRecords(4, 1, { count: 11, sentAt: at(-2 * hour) })
        const pruner = yield* Pruner.make(settings({ batchSize: 10 }))
        expect(yield* pruner.pass).toMatchObject({ deleted: 7 + 7 + 9 + 9 + 11 })
        expect(yield* countRecords("product_id = 1 AND restock_round = 2")).toBe(35)
        expect(yield* countRecords("product_id = 2 AND restock_round = 2")).toBe(12)
        expect(yield* countRecords()).toBe(47)
        expect(yield* prunedRounds).toEqual(["1:1", "2:1", "3:1", "3:2", "4:1"])

        // Product 1's round is resumed and completes; product 2's sells out: neither can be resumed now.
        const sql = yield* SqlClient.SqlClient
        yield* sql`UPDATE product_notification_history SET status = 'COMPLETED' WHERE product_id = 1 AND restock_round = 2`
        yield* sql`UPDATE product_notification_history SET status = 'CANCELED_BY_SOLD_OUT', lease_owner = NULL, lease_expires_at = NULL
          WHERE product_id = 2 AND restock_round = 2`
        expect((yield* pruner.pass).deleted).toBe(47)
        expect(yield* countRecords()).toBe(0)
        expect(yield* prunedRounds).toEqual(["1:1", "1:2", "2:1", "2:2", "3:1", "3:2", "4:1"])
      })
    )

    scenario(
      "while a round is sending the batches are the smaller size; a round waiting for its send window does not count",
      Effect.gen(function*() {
        yield* atBase
        yield* seedProduct(1, ["COMPLETED"])
        yield* seedProduct(2, ["IN_PROGRESS"])
        yield* seedRecords(1, 1, { count: 500, sentAt: at(-3 * hour), spread: true })
        const pruner = yield* Pruner.make(settings({ batchSize: 100, whileSending: { batchSize: 10, share: 0.1 } }))
        // The first batch cannot know yet: 100; then 40 of 10 and the one that finds none left.
        expect(yield* pruner.pass).toMatchObject({ deleted: 500, batches: 1 + 40 + 1 })

        const sql = yield* SqlClient.SqlClient
        yield* sql`UPDATE product_notification_history SET waiting_until = ${dialectOf(sql).timestamp(at(hour))}
          WHERE product_id = 2`
        yield* seedRecords(1, 1, { count: 250, sentAt: at(-2 * hour), firstUser: 1_000, spread: true })
        // The last batch saw a round sending: 10 first; then the full size again, 100, 100, 40.
        expect(yield* pruner.pass).toMatchObject({ deleted: 250, batches: 4 })
        expect(yield* countRecords()).toBe(0)
      })
    )

    scenario(
      "the watermark is the highest id pruned, kept by the database: a new connection reads it, a new pruner keeps it",
      Effect.gen(function*() {
        yield* atBase
        yield* seedProduct(1, ["COMPLETED", "CANCELED_BY_ERROR"])
        yield* seedRecords(1, 1, { count: 30, sentAt: at(-3 * hour), spread: true })
        // Kept (resumable) records with higher ids and older times: they do not move the watermark.
        yield* seedRecords(1, 2, { count: 5, sentAt: at(-4 * hour) })
        const repo = yield* Repo
        expect(yield* repo.prunedThrough).toBe(0)
        const highest = yield* maxRecordId("restock_round = 1")
        yield* (yield* Pruner.make(settings())).pass
        expect(yield* repo.prunedThrough).toBe(highest)

        // A restart: a new pool on the same database, and a new pruner with nothing more to do.
        const { config } = yield* TestDatabase
        const restarted = SqlRepo.layer.pipe(Layer.provideMerge(Database.layer(config)), Layer.orDie)
        yield* Effect.gen(function*() {
          const again = yield* Repo
          expect(yield* again.prunedThrough).toBe(highest)
          expect(yield* prunedRounds).toEqual(["1:1"])
          // The next pruner may take the lease only once the first one's lapsed.
          yield* TestClock.adjust(Pruner.settingsFor(Duration.hours(1)).leaseDuration)
          yield* TestClock.adjust(Duration.millis(1))
          expect(yield* (yield* Pruner.make(settings())).pass).toMatchObject({ pruned: true, deleted: 0, prunedThrough: highest })
          expect(yield* again.prunedThrough).toBe(highest)
        }).pipe(Effect.provide(restarted))
      })
    )

    scenario(
      "two pruners at once: one holds the lease and prunes every record once, the other changes nothing",
      Effect.gen(function*() {
        yield* atBase
        yield* seedProduct(1, ["COMPLETED"])
        yield* seedRecords(1, 1, { count: 2_500, sentAt: at(-3 * hour), spread: true })
        const before = (yield* Metric.value(Metrics.historyRowsPruned)).count
        const [a, b] = [yield* Pruner.make(settings()), yield* Pruner.make(settings())]
        const passes = yield* Effect.all([a.pass, b.pass], { concurrency: 2 })
        expect(passes.map((pass) => pass.pruned).sort()).toEqual([false, true])
        expect(passes.map((pass) => pass.deleted).sort((x, y) => x - y)).toEqual([0, 2_500])
        expect(yield* countRecords()).toBe(0)
        expect((yield* Metric.value(Metrics.historyRowsPruned)).count - before).toBe(2_500)
        // The holder keeps the lease pass after pass; the other gets it when the holder gives it up.
        const holder = passes[0]!.pruned ? a : b
        const other = holder === a ? b : a
        expect((yield* other.pass).pruned).toBe(false)
        expect((yield* holder.pass).pruned).toBe(true)
        yield* holder.release
        expect((yield* other.pass).pruned).toBe(true)
      })
    )

    scenario(
      "a pruner whose lease was taken over stops before its next batch and deletes nothing more",
      Effect.gen(function*() {
        yield* atBase
        yield* seedProduct(1, ["COMPLETED"])
        yield* seedRecords(1, 1, { count: 300, sentAt: at(-3 * hour), spread: true })
        const repo = yield* Repo
        const slow = yield* Pruner.make(settings({ batchSize: 100, pauseBetweenBatches: Duration.seconds(1) }))
        const running = yield* Effect.fork(slow.pass)
        // After its first batch it pauses (virtual time): meanwhile its lease lapses and another takes it.
        yield* eventually("the first batch", countRecords(), (n) => n === 200)
        yield* TestClock.adjust(Duration.millis(1))
        expect(yield* repo.claimPruning({ owner: "another", expiresAt: at(hour) }, at(10 * hour))).toBe(true)
        yield* TestClock.adjust(Duration.seconds(1))
        expect(yield* Fiber.join(running)).toMatchObject({ pruned: false })
        expect(yield* countRecords()).toBe(200)
      })
    )

    scenario(
      "a batch that dies half-way through its delete leaves every record, the watermark and the flags as they were",
      Effect.gen(function*() {
        yield* atBase
        yield* seedProduct(1, ["COMPLETED"])
        yield* seedRecords(1, 1, { count: 500, sentAt: at(-3 * hour), spread: true })
        const sql = yield* SqlClient.SqlClient
        const victim = (yield* maxRecordId("1 = 1")) - 100
        // The delete fails on one row in the middle of the batch, as a statement cut short by a crash would.
        yield* dialectOf(sql).name === "mysql"
          ? sql.unsafe(`CREATE TRIGGER die_mid_batch BEFORE DELETE ON product_user_notification_history FOR EACH ROW
              BEGIN IF OLD.id = ${victim} THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'killed mid-batch'; END IF; END`)
          : sql.unsafe(`CREATE TRIGGER die_mid_batch BEFORE DELETE ON product_user_notification_history
              WHEN OLD.id = ${victim} BEGIN SELECT RAISE(ABORT, 'killed mid-batch'); END`)
        const pruner = yield* Pruner.make(settings())
        const failed = yield* Effect.flip(pruner.pass)
        expect(failed._tag).toBe("StorageUnavailable")
        expect(yield* countRecords()).toBe(500)
        expect(yield* (yield* Repo).prunedThrough).toBe(0)
        expect(yield* prunedRounds).toEqual([])
        // Once the cause is gone, the next pass does the whole batch.
        yield* sql.unsafe(`DROP TRIGGER die_mid_batch`)
        expect(yield* pruner.pass).toMatchObject({ deleted: 500, prunedThrough: victim + 100 })
      })
    )

    scenario(
      "in the background, a record goes no later than min(retention / 10, 1 minute) after it expires, never before",
      Effect.gen(function*() {
        yield* atBase
        yield* seedProduct(1, ["COMPLETED"])
        const retention = Duration.seconds(100) // deadline: 10 s
        yield* seedRecords(1, 1, { count: 3, sentAt: at(0) })
        yield* Layer.launch(Pruner.layer({ ...Pruner.settingsFor(retention), pauseBetweenBatches: Duration.zero })).pipe(
          Effect.forkScoped
        )
        // Step through virtual time a second at a time, letting each pass finish on the real database.
        const until = (seconds: number) =>
          Effect.gen(function*() {
            while ((yield* TestClock.currentTimeMillis) < base + seconds * 1_000) {
              yield* TestClock.adjust(Duration.millis(500))
              yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 15)))
            }
          })
        yield* until(99.5)
        expect(yield* countRecords()).toBe(3)
        yield* until(110)
        yield* eventually("the expired records pruned", countRecords(), (n) => n === 0)
        // Nothing is left: the oldest record's age reads 0.
        yield* eventually("the gauge", Metric.value(Metrics.historyOldestRecordAge), (gauge) => gauge.value === 0)
      })
    )
  })
