/**
 * The sends of a dispatch through a notifier's callback (`Send.ts`): what
 * settles, what halts the round, and what an interrupted loop leaves.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Option } from "effect"
import type { Settled } from "../../src/Dispatch/GroupCommit.js"
import type { Halt } from "../../src/Dispatch/Halt.js"
import * as MemoryLimiter from "../../src/Dispatch/RateLimiter/Memory.js"
import { RateLimiter } from "../../src/Dispatch/RateLimiter/RateLimiter.js"
import * as Send from "../../src/Dispatch/Send.js"
import { ProductId, RestockRound, UserId } from "../../src/Domain/Ids.js"
import { Product } from "../../src/Domain/Product.js"
import { Round } from "../../src/Domain/Round.js"
import type { Subscriber } from "../../src/Domain/Subscription.js"
import { type NotifierShape, SendFailed } from "../../src/Notifier/Notifier.js"
import * as PageSpans from "../../src/Observability/PageSpans.js"

const productId = ProductId.make(3)
const round = new Round({
  productId,
  restockRound: RestockRound.make(1),
  status: "IN_PROGRESS",
  lastSentUserId: null,
  sentCount: 0,
  startedAt: new Date(0),
  updatedAt: new Date(0),
  finishedAt: null,
  error: null,
  waitingUntil: null
})
const product = new Product({
  id: productId,
  name: "Kettle",
  restockRound: 1,
  stock: 10,
  stockStatus: "IN_STOCK",
  minimumStock: 0,
  notifyPerUnit: null
})
const subscriber = (userId: number): Subscriber => ({ userId: UserId.make(userId), alreadyRecorded: false }) as Subscriber

/** A notifier whose requests wait until the test answers them, and what was aborted. */
const heldNotifier = () => {
  const pending = new Map<number, (outcome: Exit.Exit<void, SendFailed>) => void>()
  const aborted: Array<number> = []
  const notifier: NotifierShape = {
    send: () => Effect.die("the dispatch makes first attempts through the callback"),
    start: (notification, done) => {
      pending.set(notification.userId, done)
      return () => aborted.push(notification.userId)
    }
  }
  return { notifier, pending, aborted }
}

const sendsOver = (notifier: NotifierShape) =>
  Effect.gen(function*() {
    const settled: Array<Settled> = []
    const halt = yield* Deferred.make<Halt>()
    const pages = yield* PageSpans.make(100)
    const page = yield* pages.started
    const sends = yield* Send.make({
      notifier,
      limiter: yield* RateLimiter,
      links: { linkOf: (_, userId) => `https://shop.example/u/${userId}`, urlFor: () => Effect.die("unused"), verify: () => Effect.die("unused") },
      clock: yield* Effect.clock,
      round,
      product,
      retries: 0,
      pages,
      commit: { settle: (turn) => void settled.push(turn), end: Effect.void, run: Effect.void },
      halt
    })
    const start = (userId: number) => sends.start(subscriber(userId), userId - 1, new Date(1_000 + userId), page)
    return { sends, start, settled, halt }
  })

describe("Send", () => {
  it.effect("an answer through the callback settles its turn with its delivery; a permanent failure settles it failed and halts", () =>
    Effect.gen(function*() {
      const { notifier, pending } = heldNotifier()
      const { halt, settled, start } = yield* sendsOver(notifier)
      start(1)
      start(2)
      expect(settled).toEqual([])
      pending.get(2)!(Exit.void)
      expect(settled).toEqual([{ position: 1, userId: 2, succeeded: true, delivery: { userId: 2, sentAt: new Date(1_002) } }])
      pending.get(1)!(Exit.fail(new SendFailed({ reason: "Permanent", message: "HTTP 400" })))
      // The policy runs on a fiber for a failure: let it.
      yield* Effect.yieldNow()
      const reason = yield* Deferred.poll(halt).pipe(Effect.flatMap(Option.match({ onNone: () => Effect.die("no halt"), onSome: (h) => h })))
      expect(reason).toMatchObject({ _tag: "SendGaveUp", message: "sender failed after 1 attempt: HTTP 400" })
      expect(settled.map((turn) => [turn.userId, turn.succeeded])).toEqual([[2, true], [1, false]])
    }).pipe(Effect.provide(MemoryLimiter.layer({ limitPerSecond: 500 }))))

  it.effect("interrupted, every request in flight is aborted and none settles, even if it answers after", () =>
    Effect.gen(function*() {
      const { aborted, notifier, pending } = heldNotifier()
      const { sends, settled, start } = yield* sendsOver(notifier)
      for (const user of [1, 2, 3]) start(user)
      pending.get(2)!(Exit.void)
      yield* sends.interruptAll
      expect(aborted.sort()).toEqual([1, 3])
      pending.get(1)!(Exit.void)
      pending.get(3)!(Exit.void)
      expect(settled.map((turn) => turn.userId)).toEqual([2])
    }).pipe(Effect.provide(MemoryLimiter.layer({ limitPerSecond: 500 }))))

  it.effect("a notifier that answers from within `start` settles at once and leaves nothing to abort", () =>
    Effect.gen(function*() {
      const aborted: Array<number> = []
      const { sends, settled, start } = yield* sendsOver({
        send: () => Effect.void,
        start: (notification, done) => {
          done(Exit.void)
          return () => aborted.push(notification.userId)
        }
      })
      start(1)
      expect(settled.map((turn) => turn.userId)).toEqual([1])
      yield* sends.interruptAll
      expect(aborted).toEqual([])
    }).pipe(Effect.provide(MemoryLimiter.layer({ limitPerSecond: 500 }))))
})
