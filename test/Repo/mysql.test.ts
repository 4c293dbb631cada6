import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { ProductId, UserId } from "../../src/Domain/Ids.js"
import { type ConnectionPool, driverPoolOf, type PooledConnection } from "../../src/Repo/CallbackTransaction.js"
import * as Database from "../../src/Repo/Database.js"
import { dialectOf } from "../../src/Repo/Dialect.js"
import { Repo } from "../../src/Repo/Repo.js"
import * as SqlRepo from "../../src/Repo/Sql.js"
import { repoContract } from "../contracts/Repo.contract.js"
import { freshMysqlDatabase, layerMysql } from "../support/Mysql.js"

const repoOnMysql = SqlRepo.layer.pipe(Layer.provideMerge(layerMysql))

repoContract("MySQL/MariaDB", repoOnMysql)

// MySQL 8 has no `INSERT ... RETURNING`: the adapter then reads a batch's rows
// back after inserting them. MariaDB can run that path too.
repoContract(
  "MySQL/MariaDB without INSERT ... RETURNING",
  Layer.effect(Repo, Effect.flatMap(SqlClient.SqlClient, (sql) => SqlRepo.makeWithDialect(dialectOf(sql, { insertReturning: false }))))
    .pipe(Layer.provideMerge(layerMysql))
)

/**
 * The adapter over the client's own driver pool, watched: the statements
 * the record batch's chain sends are kept (their first word), and with a
 * `failure` the batch's insert is answered with it instead: a real server
 * error or a real lost connection, inside a real transaction, after the
 * fence has moved the round's counters.
 */
interface InsertFailure {
  /** The statement sent in the insert's place. */
  readonly sql: (connection: PooledConnection) => string
  /** Its timeout, if not the chain's own. */
  readonly timeoutMillis?: number
  /** The connection is then out of step: destroyed, with no ROLLBACK sent on it. */
  readonly destroysTheConnection?: boolean
}

const watchedBatches = (failure?: InsertFailure) => {
  const statements: Array<string> = []
  const destroyed = { count: 0 }
  const watched = (connection: PooledConnection): PooledConnection =>
    new Proxy(connection, {
      get: (target, key) =>
        key === "query"
          ? (options: { sql: string; timeout: number }, callback: (error: Error | null, result: unknown) => void) => {
            statements.push(options.sql.split(" ")[0]!)
            if (failure === undefined || !options.sql.startsWith("INSERT")) return target.query(options, callback)
            return target.query({ sql: failure.sql(target), timeout: failure.timeoutMillis ?? options.timeout }, callback)
          }
          : key === "release" || key === "destroy"
          // On the connection itself: released through the proxy, the pool would hand the proxy out again.
          ? () => {
            if (key === "destroy") destroyed.count += 1
            target[key]()
          }
          : Reflect.get(target, key, target)
    })
  const repo = Layer.effect(
    Repo,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const pool = yield* Effect.orDie(driverPoolOf(sql))
      const watchedPool: ConnectionPool = {
        getConnection: (callback) => pool!.getConnection((error, connection) => callback(error, connection && watched(connection)))
      }
      return yield* SqlRepo.makeWithDialect(dialectOf(sql, { insertReturning: true }), { callbackPool: Effect.succeed(watchedPool) })
    })
  ).pipe(Layer.provideMerge(layerMysql))
  return { destroyed, statements, repo }
}

/** Product 1 and its first round, open under the owner "o". */
const roundOpened = Effect.gen(function*() {
  const repo = yield* Repo
  const productId = ProductId.make(1)
  yield* repo.upsertProduct(productId, {})
  const now = new Date("2031-05-06T07:08:09.123Z")
  const opened = yield* repo.openRound(productId, { owner: "o", expiresAt: new Date("2031-05-06T08:00:00.000Z") }, now)
  return { opened, productId }
})

const twoDeliveries = (now: Date) => ({
  deliveries: [{ userId: UserId.make(1), sentAt: now }, { userId: UserId.make(2), sentAt: now }],
  lastSentUserId: UserId.make(2),
  now,
  productName: "P"
})

const { repo: watchedRepo, statements: chainStatements } = watchedBatches()
layer(watchedRepo, { excludeTestServices: true, timeout: "60 seconds" })("Repo on MySQL/MariaDB, a batch through the driver's pool", (it) => {
  // Were the chain to roll back every batch (rows not recognised, the fence misread), the
  // general path would record them all the same: only its statements show it did not.
  it.effect("commits in four statements of its own: START TRANSACTION, the fence, the insert, COMMIT", () =>
    Effect.gen(function*() {
      const repo = yield* Repo
      const { opened, productId } = yield* roundOpened
      const recorded = yield* repo.recordDeliveries(opened, "o", twoDeliveries(opened.startedAt))
      expect(chainStatements).toEqual(["START", "UPDATE", "INSERT", "COMMIT"])
      expect(recorded.round.sentCount).toBe(2)
      expect({ ...Option.getOrThrow(yield* repo.getRound(productId, opened.restockRound)) }).toEqual({ ...recorded.round })
    }))
})

const failures: ReadonlyArray<readonly [string, InsertFailure]> = [
  ["the server refuses the insert", { sql: () => "INSERT INTO no_such_table VALUES (1)" }],
  ["the connection is killed at the insert", { sql: (connection) => `KILL ${(connection as unknown as { threadId: number }).threadId}` }],
  // The connection is destroyed, not rolled back: the server rolls back once the sleep ends and
  // it finds the connection gone, which frees the round's row for the general path.
  ["the insert outlasts its timeout", { sql: () => "SELECT SLEEP(1.5)", timeoutMillis: 200, destroysTheConnection: true }]
]

for (const [name, failure] of failures) {
  const { destroyed, repo, statements } = watchedBatches(failure)
  layer(repo, { excludeTestServices: true, timeout: "60 seconds" })(`Repo on MySQL/MariaDB, a batch whose insert fails: ${name}`, (it) => {
    it.effect("is rolled back, leaves no pooled connection inside a transaction, and is recorded by the general path", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const sql = yield* SqlClient.SqlClient
        const { opened, productId } = yield* roundOpened
        const recorded = yield* repo.recordDeliveries(opened, "o", twoDeliveries(opened.startedAt))
        // The chain got as far as the insert (and no further), then the general path took over.
        expect(statements.slice(0, 3)).toEqual(["START", "UPDATE", "INSERT"])
        expect(statements.filter((statement) => statement === "COMMIT")).toEqual([])
        if (failure.destroysTheConnection === true) {
          expect(destroyed.count).toBe(1)
          expect(statements).toEqual(["START", "UPDATE", "INSERT"])
        }
        expect(recorded.round.sentCount).toBe(2)
        expect(recorded.deliveries.map((delivery) => delivery.userId)).toEqual([1, 2])

        // Every connection of the pool at once (ten, the default size): none is inside a transaction.
        const states = yield* Effect.all(
          Array.from({ length: 10 }, () => sql<{ open: number; pause: number }>`SELECT @@in_transaction AS open, SLEEP(0.05) AS pause`),
          { concurrency: "unbounded" }
        )
        expect(states.map(([row]) => Number(row!.open))).toEqual(Array.from({ length: 10 }, () => 0))
        // Counted once: the failed attempt's fence was rolled back, the general path's committed.
        const [stored] = yield* sql<{ sentCount: number; last: number | null; rows: number }>`SELECT sent_count AS sentCount,
          last_sent_user_id AS last, (SELECT COUNT(*) FROM product_user_notification_history) AS \`rows\`
          FROM product_notification_history WHERE product_id = ${productId}`
        expect({ ...stored, rows: Number(stored!.rows) }).toEqual({ sentCount: 2, last: 2, rows: 2 })
      }))
  })
}

layer(repoOnMysql, { excludeTestServices: true, timeout: "180 seconds" })("Repo on MySQL/MariaDB", (it) => {
  it.scoped("instances starting together on a fresh database migrate it once, and each finds the schema", () =>
    Effect.gen(function*() {
      const config = yield* freshMysqlDatabase
      const countDeliveries = Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ n: number }>`SELECT COUNT(*) AS n FROM product_user_notification_history`)
      const counts = yield* Effect.all(
        Array.from({ length: 3 }, () => countDeliveries.pipe(Effect.provide(Database.layer(config)))),
        { concurrency: "unbounded" }
      )
      expect(counts).toEqual([[{ n: 0 }], [{ n: 0 }], [{ n: 0 }]])
      const migrations = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ id: number }>`SELECT migration_id AS id FROM effect_sql_migrations ORDER BY migration_id`).pipe(
        Effect.provide(Database.clientLayer(config))
      )
      expect(migrations).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }])
    }))

  // Where the client's pool cannot be found the batches still work, on the slower general path.
  it.effect("finds the client's driver pool, which record batches use", () =>
    Effect.gen(function*() {
      const pool = yield* driverPoolOf(yield* SqlClient.SqlClient)
      expect(typeof pool?.getConnection).toBe("function")
    }))

  it.effect("stores times as UTC with milliseconds, whatever the process's time zone", () =>
    Effect.gen(function*() {
      const repo = yield* Repo
      const sql = yield* SqlClient.SqlClient
      const productId = ProductId.make(1)
      yield* repo.upsertProduct(productId, {})
      const startedAt = new Date("2031-05-06T07:08:09.123Z")
      yield* repo.openRound(productId, { owner: "o", expiresAt: new Date("2031-05-06T07:08:39.456Z") }, startedAt)
      const [row] = yield* sql<{ startedAt: string; leaseExpiresAt: string }>`
        SELECT DATE_FORMAT(started_at, '%Y-%m-%d %H:%i:%s.%f') AS startedAt,
               DATE_FORMAT(lease_expires_at, '%Y-%m-%d %H:%i:%s.%f') AS leaseExpiresAt
        FROM product_notification_history WHERE product_id = ${productId}`
      expect(row).toEqual({ startedAt: "2031-05-06 07:08:09.123000", leaseExpiresAt: "2031-05-06 07:08:39.456000" })
    }))

  // How fast is the throughput bench's to say (`npm run bench -- throughput`); this says it adds up.
  it.effect("records 30,000 deliveries in batches of 500: the round each batch returns is the round stored", () =>
    Effect.gen(function*() {
      const repo = yield* Repo
      const productId = ProductId.make(2)
      yield* repo.upsertProduct(productId, { stock: 1 })
      let round = yield* repo.openRound(productId, { owner: "o", expiresAt: new Date(Date.UTC(2040, 0)) }, new Date())
      const total = 30_000
      const batchSize = 500
      for (let first = 1; first <= total; first += batchSize) {
        const deliveries = Array.from({ length: batchSize }, (_, i) => ({ userId: UserId.make(first + i), sentAt: new Date() }))
        round = (yield* repo.recordDeliveries(round, "o", {
          deliveries,
          lastSentUserId: UserId.make(first + batchSize - 1),
          now: new Date(),
          productName: "Lamp"
        })).round
      }
      expect(round.sentCount).toBe(total)
      expect({ ...Option.getOrThrow(yield* repo.getRound(productId, round.restockRound)) }).toEqual({ ...round })
    }))
})
