/**
 * A database made by an earlier release upgrades in place at start-up: a
 * schema at migration 0002 with products and rounds in it gets the columns
 * of what a shop controls (SPEC §3.10–§3.12), its rows read with the defaults
 * that keep their old behaviour (minimum stock 0, no per-unit cap, not
 * waiting), and the Repo reads and writes them. On SQLite and MySQL/MariaDB.
 */
import * as Migrator from "@effect/sql/Migrator"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { DatabaseConfig } from "../../src/Config.js"
import { ProductId, RestockRound } from "../../src/Domain/Ids.js"
import * as Database from "../../src/Repo/Database.js"
import { dialectOf } from "../../src/Repo/Dialect.js"
import * as Migrate from "../../src/Repo/Migrate.js"
import createTables from "../../src/Repo/migrations/0001_create_tables.js"
import historyRetention from "../../src/Repo/migrations/0002_history_retention.js"
import * as SqlRepo from "../../src/Repo/Sql.js"
import { freshMysqlDatabase } from "../support/Mysql.js"

/** The migrations as the release before this one shipped them. */
const migrateToPrevious = Migrator.make({})({
  loader: Migrator.fromRecord({ "0001_create_tables": createTables, "0002_history_retention": historyRetention }),
  table: "effect_sql_migrations"
})

const sqliteFile = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "restock-test-"))),
  (directory) => Effect.promise(() => rm(directory, { recursive: true, force: true }))
).pipe(Effect.map((directory): DatabaseConfig => ({ _tag: "Sqlite", filename: join(directory, "restock.sqlite") })))

const startedAt = new Date("2031-05-06T07:08:09.123Z")

/** Rows as the previous release wrote them: a product in stock, one out of stock with a finished round. */
const writeOldRows = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const at = dialectOf(sql).timestamp(startedAt)
  yield* sql`INSERT INTO product ${
    sql.insert([
      { id: 1, name: "Kettle", restock_round: 0, stock: 5, stock_status: "IN_STOCK", created_at: at, updated_at: at },
      { id: 2, name: "Teapot", restock_round: 1, stock: 0, stock_status: "OUT_OF_STOCK", created_at: at, updated_at: at }
    ])
  }`
  yield* sql`INSERT INTO product_notification_history ${
    sql.insert({
      product_id: 2,
      restock_round: 1,
      status: "COMPLETED",
      sent_count: 0,
      started_at: at,
      updated_at: at,
      finished_at: at
    })
  }`
})

const columnsOf = (table: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.onDialectOrElse({
      sqlite: () => sql.unsafe<{ name: string }>(`PRAGMA table_info(${table})`),
      orElse: () =>
        sql<{ name: string }>`SELECT column_name AS name FROM information_schema.columns
          WHERE table_schema = DATABASE() AND table_name = ${table}`
    }).pipe(Effect.map((rows) => rows.map((row) => String(row.name).toLowerCase()))))

const upgradeScenario = (config: DatabaseConfig, options: { readonly halfDone: boolean }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* migrateToPrevious
    yield* writeOldRows
    expect(yield* columnsOf("product")).not.toContain("minimum_stock")
    // A run that stopped half-way (MySQL commits each DDL statement) left one column behind.
    if (options.halfDone) yield* sql.unsafe(`ALTER TABLE product ADD COLUMN notify_per_unit INT NULL`)

    // What start-up runs.
    const applied = yield* Migrate.migrate
    expect(applied).toEqual([[3, "send_policy"]])
    expect(yield* Migrate.migrate).toEqual([])
    expect(yield* columnsOf("product")).toEqual(expect.arrayContaining(["minimum_stock", "notify_per_unit"]))
    expect(yield* columnsOf("product_notification_history")).toContain("waiting_until")

    const repo = yield* SqlRepo.make
    const kettle = Option.getOrThrow(yield* repo.getProduct(ProductId.make(1)))
    expect({ ...kettle }).toEqual({
      id: 1,
      name: "Kettle",
      restockRound: 0,
      stock: 5,
      stockStatus: "IN_STOCK",
      minimumStock: 0,
      notifyPerUnit: null
    })
    const round = Option.getOrThrow(yield* repo.getRound(ProductId.make(2), RestockRound.make(1)))
    expect(round).toMatchObject({ status: "COMPLETED", waitingUntil: null, startedAt })

    // The new columns are written like any other.
    const held = yield* repo.upsertProduct(ProductId.make(1), { minimumStock: 5, notifyPerUnit: 2 })
    expect([held.stockStatus, held.minimumStock, held.notifyPerUnit]).toEqual(["OUT_OF_STOCK", 5, 2])
    const opened = yield* repo.openRound(ProductId.make(2), { owner: "o", expiresAt: new Date(Date.UTC(2040, 0)) }, startedAt, {
      waitingUntil: new Date("2031-05-07T06:00:00.000Z")
    })
    expect(Option.getOrThrow(yield* repo.getRound(ProductId.make(2), opened.restockRound)).waitingUntil).toEqual(
      new Date("2031-05-07T06:00:00.000Z")
    )
  }).pipe(Effect.provide(Database.clientLayer(config).pipe(Layer.orDie)))

describe("a database at the previous migration upgrades in place", () => {
  it.scopedLive("on SQLite", () =>
    Effect.flatMap(sqliteFile, (config) => upgradeScenario(config, { halfDone: false })))

  it.scopedLive("on SQLite, a column already there is left as it is", () =>
    Effect.flatMap(sqliteFile, (config) => upgradeScenario(config, { halfDone: true })))

  it.scopedLive("on MySQL/MariaDB", () =>
    Effect.flatMap(freshMysqlDatabase, (config) => upgradeScenario(config, { halfDone: false })), 60_000)

  it.scopedLive("on MySQL/MariaDB, after a run that stopped half-way", () =>
    Effect.flatMap(freshMysqlDatabase, (config) => upgradeScenario(config, { halfDone: true })), 60_000)
})
