/**
 * The sends of one dispatch, as the start loop hands them over once a turn
 * has its slot and its permit: the notification, its first request, the
 * retry policy when that request fails, and the outcome handed to the page's
 * span and the group commit (which gives the slot back once it is recorded).
 * A send that gives up, or a notifier that throws, halts the round; its turn
 * still settles, or its slot would never come back and the round would wait
 * for it forever.
 *
 * The first request goes through the notifier's callback (`start`) when it
 * has one, and its answer is handled in that callback: no fiber and no
 * effect steps per send. That path was a forked fiber, its FiberRefs and a
 * dozen effect steps per send: in the `rate` bench allocation went from 103
 * to 81 KiB per send, and the engine alone (limit lifted, bench `throughput`)
 * from 117 to 71 µs CPU per message (bench/README.md, "A send without a
 * fiber"). Only a failed request, or a notifier with no callback, runs on a
 * fiber (the retry policy, with its waits on `Clock`).
 *
 * Interruption: the start loop awaits every send before it returns (it
 * drains the window), so the sends outlive nothing but an interrupted loop;
 * `interruptAll` then aborts the requests in flight and interrupts the
 * fibers, and none of them settles.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as Tracer from "effect/Tracer"
import { Notification } from "../Domain/Delivery.js"
import { describeCause } from "../Domain/Errors.js"
import type { Product } from "../Domain/Product.js"
import type { Round } from "../Domain/Round.js"
import type { Subscriber } from "../Domain/Subscription.js"
import type { Abort, NotifierShape, SendFailed } from "../Notifier/Notifier.js"
import * as Metrics from "../Observability/Metrics.js"
import type { PageSpans } from "../Observability/PageSpans.js"
import type { UnsubscribeLinksShape } from "../Unsubscribe/Links.js"
import type { GroupCommit } from "./GroupCommit.js"
import { Halt } from "./Halt.js"
import { countAnswer, instrument } from "./InstrumentedNotifier.js"
import type { RateLimiterShape } from "./RateLimiter/RateLimiter.js"
import { makeRetryPolicy, type Sent } from "./SendPolicy.js"

export interface SendOptions {
  readonly notifier: NotifierShape
  readonly limiter: RateLimiterShape
  readonly links: UnsubscribeLinksShape
  readonly clock: Clock.Clock
  readonly round: Round
  readonly product: Product
  readonly retries: number
  readonly pages: PageSpans
  readonly commit: GroupCommit
  readonly halt: Deferred.Deferred<Halt>
}

export interface Sends {
  /**
   * Starts the send of `subscriber`, whose start (`sentAt`) the loop took at
   * its turn, `position` among the dispatch's turns, and returns once its
   * request is handed to the notifier.
   */
  readonly start: (subscriber: Subscriber, position: number, sentAt: Date, page: Tracer.Span) => void
  /** Aborts every send still in flight and awaits their fibers; none of them settles. */
  readonly interruptAll: Effect.Effect<void>
}

/** One send in flight. */
class InFlight {
  /** Settled or interrupted: whatever answers after that is ignored. */
  over = false
  /** Its request, while it goes through the notifier's callback. */
  abort: Abort | undefined = undefined
  /** Its fiber, while one runs it (a retry, or a notifier without a callback). */
  fiber: Fiber.RuntimeFiber<Exit.Exit<Sent, SendFailed | { readonly message: string }>> | undefined = undefined

  constructor(
    readonly subscriber: Subscriber,
    readonly position: number,
    readonly sentAt: Date,
    readonly page: Tracer.Span,
    readonly notification: Notification
  ) {}
}

/**
 * The sends, over the runtime of the fiber that builds them: the fibers of
 * retries run with its services and its settings (the start loop's: the
 * tracer off, the test clock in tests).
 */
export const make = (options: SendOptions): Effect.Effect<Sends> =>
  Effect.map(Effect.runtime<never>(), (runtime) => {
    const { clock, commit, halt, links, notifier, pages, product, round } = options
    const { productId, restockRound } = round
    const runFork = Runtime.runFork(runtime)
    const policy = makeRetryPolicy(
      { notifier: instrument(notifier), limiter: options.limiter },
      { retries: options.retries, onRetry: () => Metric.increment(Metrics.retries) }
    )
    const inFlight = new Set<InFlight>()

    /** The turn's outcome: its page told, its turn to the group commit (a delivery only when it succeeded). */
    const settle = (send: InFlight, succeeded: boolean) => {
      send.over = true
      inFlight.delete(send)
      const { subscriber } = send
      pages.settled(send.page, succeeded)
      commit.settle({
        position: send.position,
        userId: subscriber.userId,
        succeeded,
        delivery: succeeded ? { userId: subscriber.userId, sentAt: send.sentAt } : undefined
      })
    }

    const giveUp = (send: InFlight, message: string) => {
      Deferred.unsafeDone(halt, Effect.succeed(Halt.SendGaveUp({ message })))
      settle(send, false)
    }

    const unexpected = (defect: unknown) => `the notifier failed unexpectedly: ${describeCause(defect)}`

    /** Runs `effect` (the send's retries, or all of it) on a fiber of its own, and settles the send with its outcome. */
    const onFiber = (send: InFlight, effect: Effect.Effect<Sent, SendFailed | { readonly message: string }>) => {
      const fiber = runFork(Effect.exit(effect))
      send.fiber = fiber
      fiber.addObserver((outer) => {
        send.fiber = undefined
        // Interrupted (the round is ending): nothing to settle.
        if (send.over || Exit.isFailure(outer)) return
        const exit = outer.value
        if (Exit.isSuccess(exit)) return settle(send, true)
        if (Cause.isInterruptedOnly(exit.cause)) return
        const failure = Cause.failureOption(exit.cause)
        giveUp(send, Option.isSome(failure) ? failure.value.message : unexpected(Cause.squash(exit.cause)))
      })
    }

    /** The first request's answer, through the notifier's callback. */
    const answered = (send: InFlight, outcome: Exit.Exit<void, SendFailed>, startNanos: bigint) => {
      if (send.over) return
      send.abort = undefined
      if (Exit.isSuccess(outcome)) {
        countAnswer(clock, startNanos, undefined)
        return settle(send, true)
      }
      const failure = Cause.failureOption(outcome.cause)
      if (Option.isNone(failure)) return giveUp(send, unexpected(Cause.squash(outcome.cause)))
      countAnswer(clock, startNanos, failure.value)
      // The policy decides (a permanent failure gives up at once); only a failure pays for a fiber.
      onFiber(send, policy.retryAfter(send.notification, 1, failure.value))
    }

    const start: Sends["start"] = (subscriber, position, sentAt, page) => {
      // Its fields come from decoded rows: validating them again per send costs more than the rest.
      const notification = new Notification(
        {
          userId: subscriber.userId,
          productId,
          productName: product.name,
          restockRound,
          sentAt,
          unsubscribeUrl: links.linkOf(productId, subscriber.userId)
        },
        { disableValidation: true }
      )
      const send = new InFlight(subscriber, position, sentAt, page, notification)
      inFlight.add(send)
      // How long the request waited after its start is measured: a stall here bunches
      // requests on their way to the sender as much as one there would.
      Metrics.sendStartLag.unsafeUpdate(Math.max(0, clock.unsafeCurrentTimeMillis() - sentAt.getTime()) / 1000, [])
      const startNanos = clock.unsafeCurrentTimeNanos()
      if (notifier.start === undefined) return onFiber(send, policy.attemptThenRetry(notification))
      try {
        const abort = notifier.start(notification, (outcome) => answered(send, outcome, startNanos))
        // It may have answered already, from within `start`.
        if (!send.over && send.fiber === undefined) send.abort = abort
      } catch (defect) {
        if (!send.over) giveUp(send, unexpected(defect))
      }
    }

    const interruptAll = Effect.suspend(() => {
      const fibers: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
      for (const send of inFlight) {
        send.over = true
        send.abort?.()
        if (send.fiber !== undefined) fibers.push(send.fiber)
      }
      inFlight.clear()
      return Fiber.interruptAll(fibers)
    })

    return { start, interruptAll }
  })
