/**
 * What a shop controls (SPEC §3.10–§3.12):
 *
 *  - `product.minimum_stock`: the product's "new zero"; stock at or below it
 *    is sold out. 0 for every existing product, which is what they had.
 *  - `product.notify_per_unit`: the fair share of scarce stock, subscribers
 *    per unit above the minimum; NULL (every existing product) is no cap.
 *  - `product_notification_history.waiting_until`: while a round waits for
 *    the send window to open, the next opening; NULL otherwise.
 *
 * The existing `stock_status` values stay right: with a minimum of 0 they say
 * what they said. A database made by 0002 upgrades in place at start-up; on
 * MySQL/MariaDB one `ALTER` per table, each column added only if it is not
 * there yet (DDL commits as it goes, so a run that failed half-way starts
 * again from the beginning).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import { perDialect } from "./dialects.js"

const products = "product"
const rounds = "product_notification_history"

/** Per table, the columns to add and their definitions, in each dialect. */
const columns = {
  [products]: [
    {
      name: "minimum_stock",
      mysql: "INT NOT NULL DEFAULT 0 CHECK (minimum_stock >= 0)",
      sqlite: "INTEGER NOT NULL DEFAULT 0 CHECK (minimum_stock >= 0)"
    },
    {
      name: "notify_per_unit",
      mysql: "INT NULL CHECK (notify_per_unit IS NULL OR notify_per_unit >= 1)",
      sqlite: "INTEGER NULL CHECK (notify_per_unit IS NULL OR notify_per_unit >= 1)"
    }
  ],
  // Times as in 0001: DATETIME(3) on MySQL, ISO-8601 UTC text on SQLite.
  [rounds]: [{ name: "waiting_until", mysql: "DATETIME(3) NULL", sqlite: "TEXT NULL" }]
} as const

const mysql = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  for (const [table, wanted] of Object.entries(columns)) {
    const present = yield* sql<{ name: string }>`SELECT column_name AS name FROM information_schema.columns
      WHERE table_schema = DATABASE() AND table_name = ${table}`
    const have = new Set(present.map((column) => String(column.name).toLowerCase()))
    const missing = wanted.filter((column) => !have.has(column.name))
    if (missing.length === 0) continue
    yield* sql.unsafe(
      `ALTER TABLE ${table} ${missing.map((column) => `ADD COLUMN ${column.name} ${column.mysql}`).join(", ")}`
    )
  }
})

// SQLite runs the migration in one transaction: all of it applies or none.
const sqlite = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  for (const [table, wanted] of Object.entries(columns)) {
    const present = yield* sql.unsafe<{ name: string }>(`PRAGMA table_info(${table})`)
    const have = new Set(present.map((column) => column.name))
    for (const column of wanted) {
      if (!have.has(column.name)) yield* sql.unsafe(`ALTER TABLE ${table} ADD COLUMN ${column.name} ${column.sqlite}`)
    }
  }
})

export default perDialect({ mysql, sqlite })
