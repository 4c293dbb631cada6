/**
 * The dispatch engine alone: the real `dispatchRound` of `src/Dispatch/Round.ts`
 * over ports that answer at once from memory (subscribers from an array in
 * pages, records and sends that do nothing, stock that never sells out), with
 * the in-process limiter lifted. What is left is the engine's own CPU per
 * message: its fibers, Stream stages, metrics and schemas.
 *
 * Beside it, the cost on this machine of the Effect primitives the engine
 * uses per message, so the two can be read together.
 */
import { Chunk, Deferred, Effect, Fiber, Layer, Option, Sink, Stream } from "effect"
import * as RateLimiterMemory from "../../src/Dispatch/RateLimiter/Memory.js"
import type { Halt } from "../../src/Dispatch/Halt.js"
import { dispatchRound } from "../../src/Dispatch/Round.js"
import { DispatchSettings } from "../../src/Dispatch/Settings.js"
import { Delivery, type DeliveryRecord } from "../../src/Domain/Delivery.js"
import { DeliveryId, ProductId, RestockRound, SubscriptionId, UserId } from "../../src/Domain/Ids.js"
import { Product } from "../../src/Domain/Product.js"
import { Round } from "../../src/Domain/Round.js"
import type { Subscriber } from "../../src/Domain/Subscription.js"
import { DeliveryFeed } from "../../src/Feed/Feed.js"
import { instantNotifier } from "./Stack.js"
import { Repo, type RepoShape } from "../../src/Repo/Repo.js"
import { StockCache, type StockCacheShape } from "../../src/StockCache/StockCache.js"
import { UnsubscribeLinks } from "../../src/Unsubscribe/Links.js"

const productId = ProductId.make(1)
const restockRound = RestockRound.make(1)

const round = new Round({
  productId,
  restockRound,
  status: "IN_PROGRESS",
  lastSentUserId: null,
  sentCount: 0,
  startedAt: new Date(),
  updatedAt: new Date(),
  finishedAt: null,
  error: null,
  waitingUntil: null
})

const product = new Product({
  id: productId,
  name: "Bench product",
  restockRound: 1,
  stock: 1_000_000,
  stockStatus: "IN_STOCK",
  minimumStock: 0,
  notifyPerUnit: null
})

/** Only what `dispatchRound` calls; the rest would be a bench bug. */
const memoryRepo = (subscribers: number, pageSize: number): RepoShape => {
  const all: Array<Subscriber> = Array.from({ length: subscribers }, (_, i) => ({
    subscriptionId: SubscriptionId.make(i + 1),
    userId: UserId.make(i + 1),
    alreadyRecorded: false
  }))
  let nextId = 1
  const unused = () => Effect.dieMessage("not used by the dispatch")
  return {
    subscriptionIdOf: () => Effect.succeed(Option.none()),
    pendingSubscribers: () =>
      Stream.fromChunks(
        ...Array.from({ length: Math.ceil(subscribers / pageSize) }, (_, page) =>
          Chunk.unsafeFromArray(all.slice(page * pageSize, (page + 1) * pageSize)))
      ),
    recordDeliveries: (_round, _owner, batch) =>
      Effect.succeed({
        deliveries: batch.deliveries.map((d: DeliveryRecord) =>
          new Delivery({ id: DeliveryId.make(nextId++), productId, productName: product.name, userId: d.userId, restockRound, sentAt: d.sentAt }, {
            disableValidation: true
          })
        ),
        round
      }),
    finishRound: () => Effect.succeed(round),
    setWaitingUntil: () => Effect.succeed(round),
    getRound: () => Effect.succeed(Option.some(round)),
    renewLease: () => Effect.void,
    upsertProduct: unused,
    getProduct: unused,
    setStock: unused,
    listProducts: unused,
    subscribe: unused,
    unsubscribe: unused,
    countActiveSubscribers: unused,
    openRound: unused,
    reopenRound: unused,
    latestRound: unused,
    listRounds: unused,
    leaseOf: unused,
    recipients: unused,
    deliveriesOfUser: unused,
    claimPruning: unused,
    releasePruning: unused,
    pruneHistory: unused,
    prunedThrough: unused(),
    oldestRecordSentAt: unused(),
    ping: Effect.void
  } as RepoShape
}

const neverSoldOut: StockCacheShape = {
  watch: () => Effect.succeed({ stock: Effect.succeed(1_000_000), isSoldOut: Effect.succeed(false), soldOut: Effect.never }),
  get: () => Effect.succeed(1_000_000),
  set: (_id, stock) => Effect.succeed(stock),
  adjust: () => Effect.succeed(1_000_000),
  ping: Effect.void
} as StockCacheShape

const cpuMicros = async (run: () => Promise<unknown>): Promise<number> => {
  const before = process.cpuUsage()
  await run()
  const used = process.cpuUsage(before)
  return used.user + used.system
}

/** CPU µs per message of the engine alone (after one warm-up round). */
export const engineAlone = (subscribers: number) =>
  Effect.promise(async () => {
    const ports = Layer.mergeAll(
      Layer.succeed(Repo, memoryRepo(subscribers, DispatchSettings.defaults.pageSize)),
      Layer.succeed(StockCache, neverSoldOut),
      Layer.succeed(DeliveryFeed, {
        publish: () => Effect.void,
        listen: () => Effect.dieMessage("not used"),
        subscribe: () => Effect.dieMessage("not used")
      }),
      instantNotifier,
      RateLimiterMemory.layer({ limitPerSecond: 1_000_000 }),
      Layer.succeed(DispatchSettings, DispatchSettings.defaults),
      UnsubscribeLinks.layer({ publicUrl: "http://127.0.0.1:8080", secret: "bench-secret" })
    )
    const once = Effect.gen(function*() {
      const halt = yield* Deferred.make<Halt>()
      return yield* dispatchRound({ round, product, owner: "bench", halt, onProgress: () => Effect.void })
    }).pipe(Effect.provide(ports))
    await Effect.runPromise(once)
    return (await cpuMicros(() => Effect.runPromise(once))) / subscribers
  })

/** CPU µs per element of the Effect primitives the engine runs per message. */
export const primitives = (count: number) =>
  Effect.promise(async () => {
    const elements = Chunk.range(1, count)
    const perElement = async (effect: Effect.Effect<unknown>) => {
      await Effect.runPromise(effect)
      return (await cpuMicros(() => Effect.runPromise(effect))) / count
    }
    const source = Stream.range(1, count)
    return [
      ["Effect.forEach of Effect.succeed (the floor)", await perElement(Effect.forEach(elements, Effect.succeed, { discard: true }))],
      ["fork + join a fiber", await perElement(Effect.forEach(elements, (i) => Effect.flatMap(Effect.fork(Effect.succeed(i)), Fiber.join), { discard: true }))],
      ["Effect.raceFirst (against a Deferred.await)", await perElement(Effect.flatMap(Deferred.make<void>(), (d) => Effect.forEach(elements, (i) => Effect.raceFirst(Effect.succeed(i), Deferred.await(d)), { discard: true })))],
      ["semaphore take + release", await perElement(Effect.flatMap(Effect.makeSemaphore(16), (s) => Effect.forEach(elements, () => Effect.zipRight(s.take(1), s.release(1)), { discard: true })))],
      ["Stream.mapEffect stage (per element)", await perElement(Stream.runDrain(source.pipe(Stream.mapEffect(Effect.succeed))))],
      ["Stream.buffer(16) between two mapEffect stages", await perElement(Stream.runDrain(source.pipe(Stream.mapEffect(Effect.succeed), Stream.buffer({ capacity: 16 }), Stream.mapEffect(Effect.succeed))))],
      ["Stream.aggregate(Sink.collectAllN(500)) after mapEffect", await perElement(Stream.runDrain(source.pipe(Stream.mapEffect(Effect.succeed), Stream.aggregate(Sink.collectAllN(500)))))]
    ] as const
  })
