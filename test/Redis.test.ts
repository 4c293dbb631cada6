import { describe, expect, it } from "@effect/vitest"
import * as net from "node:net"
import { Duration, Effect, Redacted, Schedule } from "effect"
import { StorageUnavailable } from "../src/Domain/Errors.js"
import * as RedisConnection from "../src/Redis.js"
import * as TestRedis from "./support/Redis.js"

/** A local port nothing listens on. */
const closedPort = Effect.async<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

describe("Redis connection", () => {
  it.scopedLive("connecting where no Redis answers fails with StorageUnavailable, not a hang", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const error = yield* RedisConnection.make(Redacted.make(new URL(`redis://127.0.0.1:${port}`))).pipe(
        Effect.flip,
        Effect.timeout("3 seconds")
      )
      expect(error).toBeInstanceOf(StorageUnavailable)
      expect(error.message).toContain(`cannot connect to Redis at 127.0.0.1:${port}`)
    }))

  it.scopedLive("while Redis is away a command fails at once; once it is back, commands work again", () =>
    Effect.gen(function*() {
      const proxy = yield* TestRedis.proxy
      const redis = yield* RedisConnection.make(proxy.url, { keyPrefix: TestRedis.randomPrefix() }).pipe(Effect.orDie)
      yield* redis.ping

      yield* proxy.cut
      yield* Effect.sleep("50 millis")
      const [elapsed, error] = yield* redis.ping.pipe(Effect.flip, Effect.timed)
      expect(error).toBeInstanceOf(StorageUnavailable)
      expect(Duration.toMillis(elapsed)).toBeLessThan(100)

      yield* proxy.restore
      yield* redis.ping.pipe(Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("5 seconds"))))
    }), 20_000)

  it.scopedLive("a command in flight when the connection drops fails rather than being sent again", () =>
    Effect.gen(function*() {
      const proxy = yield* TestRedis.proxy
      const redis = yield* RedisConnection.make(proxy.url, { keyPrefix: TestRedis.randomPrefix() }).pipe(Effect.orDie)
      // BLPOP on a key nobody pushes to stays in flight until the cut.
      const blocked = yield* Effect.fork(redis.use("BLPOP", (client) => client.blpop(`${redis.keyPrefix}nothing`, 2)))
      yield* Effect.sleep("100 millis")
      yield* proxy.cut
      const error = yield* blocked.await.pipe(Effect.flatten, Effect.flip, Effect.timeout("1 second"))
      expect(error).toBeInstanceOf(StorageUnavailable)
    }))
})
