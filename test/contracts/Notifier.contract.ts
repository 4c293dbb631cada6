/**
 * What every `Notifier` that talks to a receiver promises, run against each
 * of them: the webhook over a real socket to a test sender, and the recording
 * notifier the engine's tests send through (so that a test passing on the
 * recording one says something of the webhook).
 *
 * The third notifier, `ViaFeed` (`NOTIFIER=sse`), has no receiver: its `send`
 * does nothing and the delivery feed publishes what the round records, which
 * `DeliveryFeed.contract.ts` covers.
 */
import { expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Either, Exit, Option } from "effect"
import type * as Scope from "effect/Scope"
import { Notification } from "../../src/Domain/Delivery.js"
import { ProductId, RestockRound, UserId } from "../../src/Domain/Ids.js"
import type { NotifierShape } from "../../src/Notifier/Notifier.js"

/** How the receiver refuses a user's notification; `undefined`: it accepts it. */
export type Refusal = { readonly reason: "Transient" | "Permanent"; readonly retryAfterSeconds?: number } | undefined

/** A notification as the receiver got it. */
export interface Received {
  readonly idempotencyKey: string
  readonly userId: number
  readonly productId: number
  readonly productName: string
  readonly restockRound: number
  readonly sentAt: string
  readonly unsubscribeUrl: string
}

export interface NotifierUnderTest {
  /** A notifier whose receiver refuses as `refuse` says, and what that receiver got, in order of receipt. */
  readonly make: (refuse: (userId: number) => Refusal) => Effect.Effect<
    { readonly notifier: NotifierShape; readonly received: Effect.Effect<ReadonlyArray<Received>> },
    never,
    Scope.Scope
  >
}

const notification = (userId: number) =>
  new Notification({
    userId: UserId.make(userId),
    productId: ProductId.make(12),
    productName: "Espresso machine",
    restockRound: RestockRound.make(4),
    sentAt: new Date("2026-12-02T09:30:00.125Z"),
    unsubscribeUrl: `https://shop.example/unsubscribe/token-of-${userId}`
  })

const asReceived = (userId: number): Received => {
  const sent = notification(userId)
  return {
    idempotencyKey: sent.idempotencyKey,
    userId,
    productId: 12,
    productName: "Espresso machine",
    restockRound: 4,
    sentAt: "2026-12-02T09:30:00.125Z",
    unsubscribeUrl: `https://shop.example/unsubscribe/token-of-${userId}`
  }
}

export const notifierContract = (name: string, underTest: NotifierUnderTest) => {
  it.scopedLive(`${name}: a send returns once the receiver has the notification, whole and with its idempotency key`, () =>
    Effect.gen(function*() {
      const { notifier, received } = yield* underTest.make(() => undefined)
      yield* notifier.send(notification(1))
      expect(yield* received).toStrictEqual([asReceived(1)])
      yield* notifier.send(notification(2))
      expect(yield* received).toStrictEqual([asReceived(1), asReceived(2)])
    }))

  it.scopedLive(`${name}: 50 sends at once are each received once`, () =>
    Effect.gen(function*() {
      const { notifier, received } = yield* underTest.make(() => undefined)
      const users = Array.from({ length: 50 }, (_, i) => i + 1)
      yield* Effect.forEach(users, (user) => notifier.send(notification(user)), { concurrency: "unbounded" })
      const got = yield* received
      expect(got.map((r) => r.userId).sort((a, b) => a - b)).toStrictEqual(users)
      expect(new Set(got.map((r) => r.idempotencyKey)).size).toBe(50)
    }))

  it.scopedLive(`${name}: a refusal is a SendFailed that says whether to retry and when`, () =>
    Effect.gen(function*() {
      const { notifier, received } = yield* underTest.make((userId) =>
        userId === 1
          ? { reason: "Transient" }
          : userId === 2
          ? { reason: "Transient", retryAfterSeconds: 2 }
          : userId === 3
          ? { reason: "Permanent" }
          : undefined
      )
      const outcome = (userId: number) =>
        Effect.map(Effect.either(notifier.send(notification(userId))), (result) =>
          Either.isRight(result)
            ? "sent"
            : { reason: result.left.reason, retryAfterMillis: result.left.retryAfter === undefined ? undefined : Duration.toMillis(result.left.retryAfter) })

      expect(yield* outcome(1)).toStrictEqual({ reason: "Transient", retryAfterMillis: undefined })
      expect(yield* outcome(2)).toStrictEqual({ reason: "Transient", retryAfterMillis: 2_000 })
      expect(yield* outcome(3)).toStrictEqual({ reason: "Permanent", retryAfterMillis: undefined })
      expect(yield* outcome(4)).toBe("sent")
      // A refused notification reached the receiver all the same: each attempt is one arrival.
      expect((yield* received).map((r) => r.userId)).toStrictEqual([1, 2, 3, 4])
    }))

  it.scopedLive(`${name}: through its callback, each answer is the one its send gives, given once`, () =>
    Effect.gen(function*() {
      const { notifier, received } = yield* underTest.make((userId) =>
        userId === 1 ? { reason: "Transient", retryAfterSeconds: 2 } : userId === 2 ? { reason: "Permanent" } : undefined
      )
      const start = notifier.start
      if (start === undefined) return yield* Effect.die(`${name} has no callback form`)
      const answers: Array<{ readonly userId: number; readonly outcome: unknown }> = []
      const outcome = (userId: number) =>
        Effect.async<void>((resume) => {
          start(notification(userId), (exit) => {
            answers.push({
              userId,
              outcome: Exit.isSuccess(exit) ? "sent" : Option.match(Cause.failureOption(exit.cause), {
                onNone: () => "defect",
                onSome: (failure) => ({
                  reason: failure.reason,
                  retryAfterMillis: failure.retryAfter === undefined ? undefined : Duration.toMillis(failure.retryAfter)
                })
              })
            })
            resume(Effect.void)
          })
        })
      yield* Effect.forEach([1, 2, 3], outcome, { concurrency: "unbounded", discard: true })
      // Any second answer would have come by now.
      yield* Effect.sleep("50 millis")
      expect([...answers].sort((a, b) => a.userId - b.userId)).toStrictEqual([
        { userId: 1, outcome: { reason: "Transient", retryAfterMillis: 2_000 } },
        { userId: 2, outcome: { reason: "Permanent", retryAfterMillis: undefined } },
        { userId: 3, outcome: "sent" }
      ])
      expect((yield* received).map((r) => r.userId).sort()).toStrictEqual([1, 2, 3])
    }))

  it.scopedLive(`${name}: a request aborted through its callback form is not answered after the abort`, () =>
    Effect.gen(function*() {
      const { notifier } = yield* underTest.make(() => undefined)
      const start = notifier.start
      if (start === undefined) return yield* Effect.die(`${name} has no callback form`)
      let answers = 0
      const abort = start(notification(1), () => answers++)
      // One that answers from within `start` has answered before the abort could come.
      const answeredAtOnce = answers
      abort()
      yield* Effect.sleep("100 millis")
      expect(answers).toBe(answeredAtOnce)
    }))
}
