/**
 * SPEC §3.17 at scale: the hot queries and the retention's statements,
 * `EXPLAIN`ed on MariaDB/MySQL over 1,000,000 delivery records, so that a
 * plan that turns into a scan (or a sort of everything) once the table is
 * big fails here. The records are loaded in one `INSERT ... SELECT` from
 * MariaDB's sequence engine (`seq_0_to_999999`), a few seconds, and spread
 * like a shop's: 20 products, 50 rounds each of 1,000 users (so each user is
 * in every round), one of them with 50,000 subscribers.
 *
 * The checks: every table read through a key, none read whole (`ALL`, or
 * `index`: every entry of an index), no filesort, the key we designed the
 * query for, and for the pages a bounded estimate of rows.
 */
import { SqlClient, type Statement } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { dialectOf } from "../../src/Repo/Dialect.js"
import { hotPathQueries } from "../../src/Repo/Sql.js"
import { retentionQueries } from "../../src/Repo/SqlRetention.js"
import { layerMysql } from "../support/Mysql.js"

interface PlanRow {
  readonly table: string | null
  readonly type: string | null
  readonly key: string | null
  readonly rows: number | string | null
  readonly Extra: string | null
}

const records = 1_000_000
const usersPerRound = 1_000
const products = 20
const subscribersOfProductOne = 50_000

const explain = (statement: Statement.Statement<unknown>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => {
    const [text, params] = statement.compile()
    return sql.unsafe<PlanRow>(`EXPLAIN ${text}`, params)
  })

const expectIndexed = (
  name: string,
  plan: ReadonlyArray<PlanRow>,
  expected: { readonly keys: Record<string, string>; readonly maxRows?: number }
) => {
  const shown = `${name}: ${JSON.stringify(plan)}`
  expect(plan.length, shown).toBeGreaterThan(0)
  for (const row of plan) {
    expect(row.key, shown).not.toBeNull()
    expect(["ALL", "index"], shown).not.toContain(row.type)
    expect(row.Extra ?? "", shown).not.toMatch(/filesort/)
    if (expected.maxRows !== undefined) expect(Number(row.rows), shown).toBeLessThanOrEqual(expected.maxRows)
  }
  expect(Object.fromEntries(plan.map((row) => [row.table, row.key])), shown).toMatchObject(expected.keys)
}

const seed = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const started = Date.now()
  // 2,000 products: the first 20 with 50 rounds, mostly completed, a few ended by an error.
  yield* sql.unsafe(`INSERT INTO product (id, name, restock_round, stock, stock_status, created_at, updated_at)
    SELECT seq, CONCAT('Product ', seq), IF(seq <= ${products}, 50, 0), 10, 'IN_STOCK', '2031-01-01', '2031-01-01'
    FROM seq_1_to_2000`)
  yield* sql.unsafe(`INSERT INTO product_notification_history
      (product_id, restock_round, status, sent_count, started_at, updated_at, finished_at)
    SELECT p.seq, r.seq, IF((p.seq + r.seq) MOD 17 = 0, 'CANCELED_BY_ERROR', 'COMPLETED'), ${usersPerRound},
      '2031-01-01', '2031-01-01', '2031-01-01'
    FROM seq_1_to_${products} p JOIN seq_1_to_50 r`)
  yield* sql.unsafe(`INSERT INTO product_user_notification (product_id, user_id, is_active, created_at, updated_at)
    SELECT 1, seq, seq MOD 10 <> 0, '2031-01-01', '2031-01-01' FROM seq_1_to_${subscribersOfProductOne}`)
  // Block b of 1,000 consecutive records is round (b DIV 20) + 1 of product (b MOD 20) + 1, to users 1..1,000;
  // two milliseconds apart, in id order, as a round at 500/s records them.
  yield* sql.unsafe(`INSERT INTO product_user_notification_history (product_id, user_id, restock_round, sent_at)
    SELECT 1 + ((seq DIV ${usersPerRound}) MOD ${products}), 1 + (seq MOD ${usersPerRound}),
      1 + ((seq DIV ${usersPerRound}) DIV ${products}), TIMESTAMP('2031-01-01') + INTERVAL (seq * 2000) MICROSECOND
    FROM seq_0_to_${records - 1}`)
  for (const table of ["product", "product_notification_history", "product_user_notification", "product_user_notification_history"]) {
    yield* sql.unsafe(`ANALYZE TABLE ${table}`)
  }
  const [count] = yield* sql<{ n: number }>`SELECT COUNT(*) AS n FROM product_user_notification_history`
  expect(Number(count!.n)).toBe(records)
  return Date.now() - started
})

layer(layerMysql, { excludeTestServices: true, timeout: "120 seconds" })(
  `the hot queries on MySQL/MariaDB at ${records.toLocaleString("en")} delivery records`,
  (it) => {
    it.effect("every plan reads a bounded range through its key, never the table", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const loadMs = yield* seed
        // Loading is part of the suite's time: keep it bounded.
        expect(loadMs).toBeLessThan(90_000)
        const hot = hotPathQueries(sql)
        const retention = retentionQueries(sql, dialectOf(sql))

        // A user in every round (1,000 records): a page of the replay after an id.
        expectIndexed("replay", yield* explain(hot.deliveriesOfUser(42, 500_000, 500)), {
          keys: { h: "ix_deliveries_of_user", p: "PRIMARY" },
          maxRows: 2 * usersPerRound
        })
        // A round's recipients after an id: its own range of ix_recipients_in_order.
        expectIndexed("recipients", yield* explain(hot.recipients(3, 25, 400_000, 100)), {
          keys: { h: "ix_recipients_in_order" },
          maxRows: 2 * usersPerRound
        })
        // The pending subscribers of product 1's round 50: a range of its subscriptions, one probe each.
        expectIndexed("pending", yield* explain(hot.pendingSubscribers(1, 50, 10_000, 500)), {
          keys: { s: "ix_active_subscribers_in_order", h: "uq_delivery" },
          maxRows: 2 * subscribersOfProductOne
        })
        expectIndexed("recorded read-back", yield* explain(hot.recordedDeliveries(1, 50, Array.from({ length: 500 }, (_, i) => i + 1))), {
          keys: { h: "uq_delivery" },
          maxRows: 1_000
        })

        // The pruner: the oldest records, from the start and after a cursor, through ix_history_sent_at
        // in its order (LIMIT stops the range read after a batch; the estimate is the whole range).
        const cutoff = new Date(Date.UTC(2031, 0, 1, 0, 20))
        expectIndexed("expired", yield* explain(retention.expired(cutoff, null, 1_000)), {
          keys: { product_user_notification_history: "ix_history_sent_at" }
        })
        expectIndexed("expired after a cursor", yield* explain(retention.expired(cutoff, { sentAt: new Date(Date.UTC(2031, 0, 1, 0, 10)), id: 300_001 }, 1_000)), {
          keys: { product_user_notification_history: "ix_history_sent_at" }
        })
        expectIndexed("resumable rounds", yield* explain(retention.resumableRounds), {
          keys: { h: "ix_rounds_by_status", p: "PRIMARY" }
        })
        // MIN of an indexed column: answered from the index's first entry, no table read at all.
        const oldest = yield* explain(retention.oldest)
        expect(oldest.map((row) => row.Extra), JSON.stringify(oldest)).toEqual(["Select tables optimized away"])
      }))
  }
)
