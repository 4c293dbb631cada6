/**
 * What pruning the delivery history needs (SPEC §3.15–§3.16):
 *
 *  - `ix_history_sent_at (sent_at, id)`: the pruner reads the oldest records
 *    in batches through it, a range read from the oldest, never a scan;
 *  - `ix_deliveries_of_user` and `ix_recipients_in_order` carry the columns
 *    their pages read (`(user_id, id, product_id, restock_round, sent_at)`,
 *    `(product_id, restock_round, id, user_id, sent_at)`): a replay page or a
 *    recipients page is then one contiguous range of one index, a few pages
 *    whatever the table's size, instead of one primary-key lookup per row
 *    scattered over the whole table (measured by the `history` bench at
 *    10,000,000 rows: those lookups made the pages' p99 grow with the table);
 *  - `product_notification_history.records_pruned`: set in the transaction
 *    that deletes any record of the round, so "were any of this round's
 *    recipients pruned?" is one read of the round's row (410 `HistoryPruned`);
 *  - `ix_rounds_by_status (status, product_id, restock_round)`: the rounds
 *    that can still be resumed (their records are kept) are found by status;
 *  - `history_retention`, one row: `pruned_through`, the highest delivery id
 *    pruned so far (the user stream's `gap`), moved in the same transaction as
 *    each delete, and the lease that lets one instance prune at a time.
 *
 * A database made by 0001 upgrades in place at start-up. On MySQL/MariaDB,
 * `ADD INDEX` and `ADD COLUMN ... DEFAULT` on InnoDB run online (the table
 * stays readable and writable while the index builds). DDL commits as it
 * goes, so a migration that failed half-way runs again from the start: every
 * step checks whether it was already done.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { perDialect } from "./dialects.js"

const history = "product_user_notification_history"
const rounds = "product_notification_history"

const mysql = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const hasIndex = (table: string, index: string) =>
    sql<{ n: number }>`SELECT COUNT(*) AS n FROM information_schema.statistics
      WHERE table_schema = DATABASE() AND table_name = ${table} AND index_name = ${index}`.pipe(
      Effect.map((rows) => Number(rows[0]?.n ?? 0) > 0)
    )
  const hasColumn = (table: string, column: string) =>
    sql<{ n: number }>`SELECT COUNT(*) AS n FROM information_schema.columns
      WHERE table_schema = DATABASE() AND table_name = ${table} AND column_name = ${column}`.pipe(
      Effect.map((rows) => Number(rows[0]?.n ?? 0) > 0)
    )
  const indexHasColumn = (table: string, index: string, column: string) =>
    sql<{ n: number }>`SELECT COUNT(*) AS n FROM information_schema.statistics
      WHERE table_schema = DATABASE() AND table_name = ${table} AND index_name = ${index} AND column_name = ${column}`.pipe(
      Effect.map((rows) => Number(rows[0]?.n ?? 0) > 0)
    )
  // One ALTER each: the index is replaced in place (online), never missing in between.
  if (!(yield* indexHasColumn(history, "ix_deliveries_of_user", "sent_at"))) {
    yield* sql.unsafe(`ALTER TABLE ${history} DROP INDEX ix_deliveries_of_user,
      ADD INDEX ix_deliveries_of_user (user_id, id, product_id, restock_round, sent_at)`)
  }
  if (!(yield* indexHasColumn(history, "ix_recipients_in_order", "sent_at"))) {
    yield* sql.unsafe(`ALTER TABLE ${history} DROP INDEX ix_recipients_in_order,
      ADD INDEX ix_recipients_in_order (product_id, restock_round, id, user_id, sent_at)`)
  }
  if (!(yield* hasIndex(history, "ix_history_sent_at"))) {
    yield* sql.unsafe(`ALTER TABLE ${history} ADD INDEX ix_history_sent_at (sent_at, id)`)
  }
  if (!(yield* hasColumn(rounds, "records_pruned"))) {
    yield* sql.unsafe(`ALTER TABLE ${rounds} ADD COLUMN records_pruned BOOLEAN NOT NULL DEFAULT FALSE`)
  }
  if (!(yield* hasIndex(rounds, "ix_rounds_by_status"))) {
    yield* sql.unsafe(`ALTER TABLE ${rounds} ADD INDEX ix_rounds_by_status (status, product_id, restock_round)`)
  }
  yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS history_retention (
    id TINYINT NOT NULL,
    pruned_through BIGINT NOT NULL DEFAULT 0,
    lease_owner VARCHAR(128) NULL,
    lease_expires_at DATETIME(3) NULL,
    PRIMARY KEY (id)
  ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4`)
  yield* sql.unsafe(`INSERT IGNORE INTO history_retention (id, pruned_through) VALUES (1, 0)`)
})

const sqlite = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  // SQLite alters no index: each is dropped and made again, in the migration's transaction.
  const covering = (yield* sql.unsafe<{ name: string }>(`PRAGMA index_info(ix_deliveries_of_user)`))
    .some((column) => column.name === "sent_at")
  if (!covering) {
    yield* sql.unsafe(`DROP INDEX IF EXISTS ix_deliveries_of_user`)
    yield* sql.unsafe(`CREATE INDEX ix_deliveries_of_user ON ${history} (user_id, id, product_id, restock_round, sent_at)`)
    yield* sql.unsafe(`DROP INDEX IF EXISTS ix_recipients_in_order`)
    yield* sql.unsafe(`CREATE INDEX ix_recipients_in_order ON ${history} (product_id, restock_round, id, user_id, sent_at)`)
  }
  yield* sql.unsafe(`CREATE INDEX IF NOT EXISTS ix_history_sent_at ON ${history} (sent_at, id)`)
  const columns = yield* sql.unsafe<{ name: string }>(`PRAGMA table_info(${rounds})`)
  if (!columns.some((column) => column.name === "records_pruned")) {
    yield* sql.unsafe(
      `ALTER TABLE ${rounds} ADD COLUMN records_pruned INTEGER NOT NULL DEFAULT 0 CHECK (records_pruned IN (0, 1))`
    )
  }
  yield* sql.unsafe(`CREATE INDEX IF NOT EXISTS ix_rounds_by_status ON ${rounds} (status, product_id, restock_round)`)
  yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS history_retention (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    pruned_through INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT NULL,
    lease_expires_at TEXT NULL
  )`)
  yield* sql.unsafe(`INSERT OR IGNORE INTO history_retention (id, pruned_through) VALUES (1, 0)`)
})

export default perDialect({ mysql, sqlite })
