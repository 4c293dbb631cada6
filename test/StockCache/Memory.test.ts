import { Effect, Layer } from "effect"
import * as SqlRepo from "../../src/Repo/Sql.js"
import * as MemoryStockCache from "../../src/StockCache/Memory.js"
import { stockCacheContract } from "../contracts/StockCache.contract.js"
import * as TestDatabase from "../support/Mysql.js"

stockCacheContract("in memory, over SQLite", {
  layer: SqlRepo.layer.pipe(Layer.provide(TestDatabase.layerSqlite)),
  makeCaches: (processes) =>
    Effect.map(MemoryStockCache.make, (cache) => Array.from({ length: processes }, () => cache))
})
