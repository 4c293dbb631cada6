import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Exit, Fiber, Schedule, Schema, Scope, Stream } from "effect"
import { Delivery } from "../../src/Domain/Delivery.js"
import { StorageUnavailable } from "../../src/Domain/Errors.js"
import { DeliveryId, ProductId, RestockRound, UserId } from "../../src/Domain/Ids.js"
import * as FeedRedis from "../../src/Feed/Redis.js"
import * as RedisConnection from "../../src/Redis.js"
import { deliveryFeedContract } from "../contracts/DeliveryFeed.contract.js"
import * as TestRedis from "../support/Redis.js"

/** A Redis feed as one process runs it: its own connection under `prefix`. */
const feedOn = (redis: RedisConnection.RedisConnectionShape) =>
  FeedRedis.make.pipe(Effect.provideService(RedisConnection.RedisConnection, redis), Effect.orDie)

deliveryFeedContract("Redis, one connection per process", {
  makeFeeds: (processes) =>
    Effect.gen(function*() {
      const prefix = TestRedis.randomPrefix()
      yield* TestRedis.cleanUpOnClose(prefix)
      return yield* Effect.forEach(Array.from({ length: processes }), () =>
        Effect.flatMap(TestRedis.connection(prefix), feedOn))
    })
})

const delivery = (id: number, userId: number) =>
  new Delivery({
    id: DeliveryId.make(id),
    productId: ProductId.make(42),
    productName: "Blue kettle",
    userId: UserId.make(userId),
    restockRound: RestockRound.make(3),
    sentAt: new Date("2026-11-25T12:00:00.000Z")
  })

const takeWithin = <E>(stream: Stream.Stream<Delivery, E>, n: number) =>
  Stream.runCollect(Stream.take(stream, n)).pipe(Effect.map(Chunk.toReadonlyArray), Effect.timeout("5 seconds"))

describe("Redis DeliveryFeed", () => {
  it.scopedLive("publishes each batch as one JSON array of deliveries on <prefix>deliveries", () =>
    Effect.gen(function*() {
      const prefix = TestRedis.randomPrefix()
      const feed = yield* feedOn(yield* TestRedis.connection(prefix))
      const raw = yield* TestRedis.rawClient
      const messages: Array<string> = []
      raw.on("message", (_channel: string, message: string) => messages.push(message))
      yield* Effect.promise(() => raw.subscribe(`${prefix}deliveries`))

      yield* feed.publish([delivery(1, 10), delivery(2, 11)])
      yield* Effect.sleep("100 millis")

      expect(messages.map((m) => JSON.parse(m))).toEqual([[
        {
          id: 1,
          productId: 42,
          productName: "Blue kettle",
          userId: 10,
          restockRound: 3,
          sentAt: "2026-11-25T12:00:00.000Z"
        },
        { id: 2, productId: 42, productName: "Blue kettle", userId: 11, restockRound: 3, sentAt: "2026-11-25T12:00:00.000Z" }
      ]])
      // Written out by hand for speed: the very text the message schema encodes.
      expect(messages).toEqual([Schema.encodeSync(FeedRedis.DeliveryBatchJson)([delivery(1, 10), delivery(2, 11)])])
    }))

  it.scopedLive("a malformed message on the channel is ignored, and later deliveries still arrive", () =>
    Effect.gen(function*() {
      const prefix = TestRedis.randomPrefix()
      const feed = yield* feedOn(yield* TestRedis.connection(prefix))
      const stream = yield* feed.subscribe(UserId.make(10), { bufferSize: 10 })
      const raw = yield* TestRedis.rawClient
      yield* Effect.promise(() => raw.publish(`${prefix}deliveries`, "{not json"))
      yield* Effect.promise(() => raw.publish(`${prefix}deliveries`, JSON.stringify({ userId: 10 })))
      // For user 10, so decoded, and invalid.
      yield* Effect.promise(() => raw.publish(`${prefix}deliveries`, JSON.stringify([{ id: -1, userId: 10 }])))
      yield* feed.publish([delivery(3, 10)])

      expect(yield* takeWithin(stream, 1)).toEqual([delivery(3, 10)])
    }))

  it.scopedLive("a listener gets its user's deliveries out of a batch for many users", () =>
    Effect.gen(function*() {
      const prefix = TestRedis.randomPrefix()
      const listening = yield* feedOn(yield* TestRedis.connection(prefix))
      const publishing = yield* feedOn(yield* TestRedis.connection(prefix))
      const stream = yield* listening.subscribe(UserId.make(12), { bufferSize: 10 })
      yield* publishing.publish([delivery(5, 11), delivery(6, 12), delivery(7, 13), delivery(8, 12)])

      expect(yield* takeWithin(stream, 2)).toEqual([delivery(6, 12), delivery(8, 12)])
    }))

  it.scopedLive("the process's channel subscription is released when the feed's scope closes", () =>
    Effect.gen(function*() {
      const prefix = TestRedis.randomPrefix()
      const raw = yield* TestRedis.rawClient
      const subscribers = Effect.promise(() => raw.pubsub("NUMSUB", `${prefix}deliveries`)).pipe(
        Effect.map((reply) => Number((reply as Array<unknown>)[1]))
      )
      const scope = yield* Scope.make()
      yield* Effect.flatMap(TestRedis.connection(prefix), feedOn).pipe(Scope.extend(scope))
      expect(yield* subscribers).toBe(1)

      yield* Scope.close(scope, Exit.void)
      yield* Effect.sleep("100 millis")
      expect(yield* subscribers).toBe(0)
    }))

  it.scopedLive("when Redis goes away, live streams end and new ones are refused; once back, listeners get deliveries again", () =>
    Effect.gen(function*() {
      const prefix = TestRedis.randomPrefix()
      const proxy = yield* TestRedis.proxy
      const behindProxy = yield* RedisConnection.make(proxy.url, { keyPrefix: prefix }).pipe(Effect.orDie)
      const listenerFeed = yield* feedOn(behindProxy)
      const publisherFeed = yield* feedOn(yield* TestRedis.connection(prefix))

      const before = yield* listenerFeed.subscribe(UserId.make(20), { bufferSize: 10 })
      const reader = yield* Effect.fork(Stream.runCollect(before))
      yield* proxy.cut
      // The stream ends (its client reconnects and replays from the database), rather than hanging.
      expect(Chunk.size(yield* Fiber.join(reader).pipe(Effect.timeout("5 seconds")))).toBe(0)
      const refused = yield* listenerFeed.subscribe(UserId.make(20), { bufferSize: 10 }).pipe(Effect.flip)
      expect(refused).toBeInstanceOf(StorageUnavailable)

      yield* proxy.restore
      const after = yield* listenerFeed.subscribe(UserId.make(20), { bufferSize: 10 }).pipe(
        // Refused until the subscriber connection is back and the channel subscribed again.
        Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("5 seconds")))
      )
      yield* publisherFeed.publish([delivery(4, 20)])
      expect(yield* takeWithin(after, 1)).toEqual([delivery(4, 20)])
    }), 20_000)
})

