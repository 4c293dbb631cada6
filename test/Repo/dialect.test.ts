import { SqlClient } from "@effect/sql"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { detect, mariaDbReturns } from "../../src/Repo/Dialect.js"
import { layerMysql, layerSqlite } from "../support/Mysql.js"

describe("INSERT ... RETURNING", () => {
  it("is MariaDB's from 10.5 on, never MySQL's", () => {
    expect(mariaDbReturns("10.11.19-MariaDB-0+deb12u1")).toBe(true)
    expect(mariaDbReturns("10.5.0-MariaDB")).toBe(true)
    expect(mariaDbReturns("11.4.2-MariaDB-ubu2404")).toBe(true)
    expect(mariaDbReturns("10.4.34-MariaDB")).toBe(false)
    expect(mariaDbReturns("8.4.3")).toBe(false)
    expect(mariaDbReturns("8.0.40-0ubuntu0.24.04.1")).toBe(false)
  })

  layer(layerMysql, { excludeTestServices: true, timeout: "180 seconds" })((it) => {
    it.effect("is used on the test server exactly when it is a MariaDB that has it", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [row] = yield* sql<{ version: string }>`SELECT VERSION() AS version`
        const dialect = yield* detect
        expect(dialect.name).toBe("mysql")
        expect(dialect.insertReturning).toBe(mariaDbReturns(row!.version))
      }))
  })

  layer(layerSqlite, { excludeTestServices: true })((it) => {
    it.effect("is used on SQLite", () =>
      Effect.map(detect, (dialect) => expect([dialect.name, dialect.insertReturning]).toEqual(["sqlite", true])))
  })
})
