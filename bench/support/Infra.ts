/**
 * The real servers a bench runs against, each bench on its own copy:
 * a fresh MariaDB/MySQL database (migrated by the first service layer built
 * on it, dropped afterwards) and a random Redis key prefix (every key under it
 * deleted afterwards), so a bench never reads or leaves anything of anyone
 * else's.
 *
 * The servers are found the way the tests find them: `MYSQL_URL` /
 * `REDIS_URL` when set, else the local default ports.
 */
import { Effect, Layer, Redacted, type Scope } from "effect"
import { randomUUID } from "node:crypto"
import type { DatabaseConfig } from "../../src/Config.js"
import type { StorageUnavailable } from "../../src/Domain/Errors.js"
import { RedisConnection } from "../../src/Redis.js"
import { freshMysqlDatabase } from "../../test/support/Mysql.js"
import * as TestRedis from "../../test/support/Redis.js"

export interface BenchDatabase {
  readonly config: DatabaseConfig
  /** `DATABASE_URL` for a service process started on it. */
  readonly url: string
}

/** A fresh, empty database (not yet migrated), dropped when the scope closes. */
export const database: Effect.Effect<BenchDatabase, never, Scope.Scope> = Effect.map(freshMysqlDatabase, (config) => ({
  config,
  url: config._tag === "Mysql" ? Redacted.value(config.url).href : `sqlite:${config.filename}`
}))

export interface BenchRedis {
  readonly url: string
  readonly prefix: string
  /** A connection under the prefix, as one service process would open it. */
  readonly layer: Layer.Layer<RedisConnection, StorageUnavailable>
}

/** A random key prefix on the Redis server; every key under it is deleted when the scope closes. */
export const redis = (label: string): Effect.Effect<BenchRedis, never, Scope.Scope> =>
  Effect.gen(function*() {
    const url = yield* TestRedis.url
    const prefix = `restock-bench:${label}:${randomUUID().slice(0, 8)}:`
    yield* TestRedis.cleanUpOnClose(prefix)
    return {
      url: Redacted.value(url).href,
      prefix,
      layer: Layer.scoped(RedisConnection, TestRedis.connection(prefix))
    }
  })
