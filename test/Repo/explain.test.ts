/**
 * The hot-path queries use an index (SPEC §2): each is `EXPLAIN`ed, as the
 * adapter builds it. On MySQL/MariaDB over a few thousand rows, so that the
 * optimizer's choice means something, and no table may be read whole (`type`
 * `ALL`, or `index`: every entry of an index) or without a key. On SQLite,
 * every table is searched through an index, never scanned.
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import type { Statement } from "@effect/sql"
import { dialectOf } from "../../src/Repo/Dialect.js"
import { hotPathQueries } from "../../src/Repo/Sql.js"
import { retentionQueries } from "../../src/Repo/SqlRetention.js"
import { layerMysql, layerSqlite } from "../support/Mysql.js"

interface PlanRow {
  readonly table: string | null
  readonly type: string | null
  readonly key: string | null
  readonly Extra: string | null
}

const explain = (statement: Statement.Statement<unknown>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const [text, params] = statement.compile()
    return sql.unsafe<PlanRow>(`EXPLAIN ${text}`, params)
  })

/** Every table the plan reads is read through a key, by range or lookup. */
const expectIndexed = (plan: ReadonlyArray<PlanRow>, expectedKeys: Record<string, string>) => {
  expect(plan.length).toBeGreaterThan(0)
  for (const row of plan) {
    expect(row.key, `table ${row.table} is read without an index: ${JSON.stringify(row)}`).not.toBeNull()
    expect(["ALL", "index"], `table ${row.table} is scanned whole: ${JSON.stringify(row)}`).not.toContain(row.type)
  }
  const keys = Object.fromEntries(plan.map((row) => [row.table, row.key]))
  expect(keys).toMatchObject(expectedKeys)
}

const seededAt = new Date(Date.UTC(2031, 0, 1))
const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i)

/** 2,000 products, 5,000 subscriptions of three of them (some inactive), 3,500 delivery records over three rounds. */
const seed = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const dialect = dialectOf(sql)
  const t = dialect.timestamp(seededAt)
  yield* sql`INSERT INTO product ${
    sql.insert(range(1, 2_000).map((id) => ({
      id,
      name: `Product ${id}`,
      restock_round: id <= 3 ? 2 : 0,
      stock: 10,
      stock_status: "IN_STOCK",
      created_at: t,
      updated_at: t
    })))
  }`
  const subscriptions = [
    ...range(1, 3_000).map((user) => ({ product_id: 1, user_id: user })),
    ...range(1, 1_000).map((user) => ({ product_id: 2, user_id: user })),
    ...range(1, 1_000).map((user) => ({ product_id: 3, user_id: user }))
  ]
  for (let i = 0; i < subscriptions.length; i += 1_000) {
    yield* sql`INSERT INTO product_user_notification ${
      sql.insert(subscriptions.slice(i, i + 1_000).map((row) => ({
        ...row,
        is_active: row.user_id % 10 === 0 ? 0 : 1,
        created_at: t,
        updated_at: t
      })))
    }`
  }
  const deliveries = [
    ...range(1, 2_000).map((user) => ({ product_id: 1, restock_round: 1, user_id: user })),
    ...range(1, 500).map((user) => ({ product_id: 1, restock_round: 2, user_id: user })),
    ...range(1, 1_000).map((user) => ({ product_id: 2, restock_round: 1, user_id: user }))
  ]
  for (let i = 0; i < deliveries.length; i += 1_000) {
    yield* sql`INSERT INTO product_user_notification_history ${
      sql.insert(deliveries.slice(i, i + 1_000).map((row) => ({ ...row, sent_at: t })))
    }`
  }
  for (const table of ["product", "product_user_notification", "product_user_notification_history"]) {
    yield* sql.unsafe(dialect.name === "mysql" ? `ANALYZE TABLE ${table}` : `ANALYZE ${table}`)
  }
})

layer(layerMysql, { excludeTestServices: true, timeout: "180 seconds" })("hot-path queries on MySQL/MariaDB use an index", (it) => {
  it.effect("every plan reads through a key", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* seed
      const queries = hotPathQueries(sql)

      // Subscribers of round 2 of product 1 after position 100: a range of the
      // ordered index, and one probe of the unique delivery key per subscriber.
      const pending = yield* explain(queries.pendingSubscribers(1, 2, 100, 500))
      expectIndexed(pending, { s: "ix_active_subscribers_in_order", h: "uq_delivery" })

      const recipients = yield* explain(queries.recipients(1, 1, 1_000, 100))
      expectIndexed(recipients, { h: "ix_recipients_in_order" })

      const ofUser = yield* explain(queries.deliveriesOfUser(42, 0, 100))
      expectIndexed(ofUser, { h: "ix_deliveries_of_user", p: "PRIMARY" })

      const readBack = yield* explain(queries.recordedDeliveries(1, 1, range(1_001, 500)))
      expectIndexed(readBack, { h: "uq_delivery" })
    }))
})

layer(layerSqlite, { excludeTestServices: true })("hot-path queries on SQLite use an index", (it) => {
  it.effect("every plan searches, none scans", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* seed
      const queries = hotPathQueries(sql)
      const retention = retentionQueries(sql, dialectOf(sql))
      const plans = {
        pending: queries.pendingSubscribers(1, 2, 100, 500),
        recipients: queries.recipients(1, 1, 1_000, 100),
        deliveriesOfUser: queries.deliveriesOfUser(42, 0, 100),
        readBack: queries.recordedDeliveries(1, 1, range(1_001, 500)),
        // The retention's statements (test/Repo/explainAtScale.test.ts has them on MariaDB at 1,000,000 records).
        expired: retention.expired(seededAt, null, 1_000),
        expiredAfter: retention.expired(seededAt, { sentAt: seededAt, id: 10 }, 1_000),
        resumableRounds: retention.resumableRounds,
        oldest: retention.oldest
      }
      for (const [name, statement] of Object.entries(plans)) {
        const [text, params] = statement.compile()
        const steps = (yield* sql.unsafe<{ detail: string }>(`EXPLAIN QUERY PLAN ${text}`, params)).map((row) => row.detail)
        const reads = steps.filter((step) => /^(SCAN|SEARCH) /.test(step))
        expect(reads.length, `${name}: ${steps.join(" | ")}`).toBeGreaterThan(0)
        // Read in index order: nothing sorted after reading.
        expect(steps.join(" | "), name).not.toMatch(/TEMP B-TREE/)
        for (const step of reads) expect(step, `${name}: ${steps.join(" | ")}`).toMatch(/^SEARCH \w+ USING (COVERING )?(INDEX|INTEGER PRIMARY KEY)/)
      }
    }))
})
