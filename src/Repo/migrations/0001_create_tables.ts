/**
 * The schema of SPEC §2, plus the columns the dispatcher needs: the round's
 * lease (`lease_owner`, `lease_expires_at`) and `in_progress_product_id`, a
 * stored generated column whose unique index lets a product have at most one
 * `IN_PROGRESS` round (NULLs never collide, so finished rounds don't count).
 *
 * Times are UTC with millisecond precision: DATETIME(3) on MySQL, ISO-8601
 * text on SQLite. `IF NOT EXISTS` everywhere so that the migration is safe to
 * run against a schema created by hand. MySQL has no `CREATE INDEX IF NOT
 * EXISTS`, so its indexes are declared inside `CREATE TABLE`.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"

const mysql = [
  `CREATE TABLE IF NOT EXISTS product (
    id BIGINT NOT NULL,
    name VARCHAR(255) NOT NULL,
    restock_round INT NOT NULL DEFAULT 0,
    stock INT NOT NULL DEFAULT 0,
    stock_status ENUM('IN_STOCK', 'OUT_OF_STOCK') NOT NULL DEFAULT 'OUT_OF_STOCK',
    created_at DATETIME(3) NOT NULL,
    updated_at DATETIME(3) NOT NULL,
    PRIMARY KEY (id)
  ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4`,
  `CREATE TABLE IF NOT EXISTS product_notification_history (
    id BIGINT NOT NULL AUTO_INCREMENT,
    product_id BIGINT NOT NULL,
    restock_round INT NOT NULL,
    status ENUM('IN_PROGRESS', 'CANCELED_BY_SOLD_OUT', 'CANCELED_BY_ERROR', 'COMPLETED') NOT NULL,
    last_sent_user_id BIGINT NULL,
    sent_count INT NOT NULL DEFAULT 0,
    error TEXT NULL,
    started_at DATETIME(3) NOT NULL,
    updated_at DATETIME(3) NOT NULL,
    finished_at DATETIME(3) NULL,
    lease_owner VARCHAR(128) NULL,
    lease_expires_at DATETIME(3) NULL,
    in_progress_product_id BIGINT GENERATED ALWAYS AS (CASE WHEN status = 'IN_PROGRESS' THEN product_id END) STORED,
    PRIMARY KEY (id),
    UNIQUE KEY uq_round (product_id, restock_round),
    UNIQUE KEY uq_in_progress_product_id (in_progress_product_id)
  ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4`,
  `CREATE TABLE IF NOT EXISTS product_user_notification (
    id BIGINT NOT NULL AUTO_INCREMENT,
    product_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at DATETIME(3) NOT NULL,
    updated_at DATETIME(3) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_subscription (product_id, user_id),
    KEY ix_active_subscribers_in_order (product_id, is_active, id)
  ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4`,
  `CREATE TABLE IF NOT EXISTS product_user_notification_history (
    id BIGINT NOT NULL AUTO_INCREMENT,
    product_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    restock_round INT NOT NULL,
    sent_at DATETIME(3) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_delivery (product_id, restock_round, user_id),
    KEY ix_deliveries_of_user (user_id, id),
    KEY ix_recipients_in_order (product_id, restock_round, id)
  ) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4`
]

// AUTOINCREMENT: ids are never reused, even after the newest row is deleted;
// delivery ids are SSE event ids and must only grow.
const sqlite = [
  `CREATE TABLE IF NOT EXISTS product (
    id INTEGER NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    restock_round INTEGER NOT NULL DEFAULT 0,
    stock INTEGER NOT NULL DEFAULT 0,
    stock_status TEXT NOT NULL DEFAULT 'OUT_OF_STOCK' CHECK (stock_status IN ('IN_STOCK', 'OUT_OF_STOCK')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS product_notification_history (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    product_id INTEGER NOT NULL,
    restock_round INTEGER NOT NULL,
    status TEXT NOT NULL
      CHECK (status IN ('IN_PROGRESS', 'CANCELED_BY_SOLD_OUT', 'CANCELED_BY_ERROR', 'COMPLETED')),
    last_sent_user_id INTEGER NULL,
    sent_count INTEGER NOT NULL DEFAULT 0,
    error TEXT NULL,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT NULL,
    lease_owner TEXT NULL,
    lease_expires_at TEXT NULL,
    in_progress_product_id INTEGER GENERATED ALWAYS AS (CASE WHEN status = 'IN_PROGRESS' THEN product_id END) STORED,
    UNIQUE (product_id, restock_round)
  )`,
  `CREATE UNIQUE INDEX IF NOT EXISTS uq_in_progress_product_id
    ON product_notification_history (in_progress_product_id)`,
  `CREATE TABLE IF NOT EXISTS product_user_notification (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    product_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    is_active INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (product_id, user_id)
  )`,
  `CREATE INDEX IF NOT EXISTS ix_active_subscribers_in_order
    ON product_user_notification (product_id, is_active, id)`,
  `CREATE TABLE IF NOT EXISTS product_user_notification_history (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    product_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    restock_round INTEGER NOT NULL,
    sent_at TEXT NOT NULL,
    UNIQUE (product_id, restock_round, user_id)
  )`,
  `CREATE INDEX IF NOT EXISTS ix_deliveries_of_user
    ON product_user_notification_history (user_id, id)`,
  `CREATE INDEX IF NOT EXISTS ix_recipients_in_order
    ON product_user_notification_history (product_id, restock_round, id)`
]

export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const statements = sql.onDialectOrElse({ mysql: () => mysql, sqlite: () => sqlite, orElse: () => [] })
  if (statements.length === 0) return yield* Effect.dieMessage("restock's schema exists for MySQL/MariaDB and SQLite only")
  for (const statement of statements) yield* sql.unsafe(statement)
})
