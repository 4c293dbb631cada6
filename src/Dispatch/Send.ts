/**
 * One subscriber's send, as the start loop forks it once the turn has its
 * slot and its permit: the notification, the retry policy over the
 * instrumented notifier, and the outcome handed to the page's span and the
 * group commit (which gives the slot back once it is recorded). A send that
 * gives up, or a notifier that throws, halts the round; its turn still
 * settles, or its slot would never come back and the round would wait for
 * it forever.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import type * as Tracer from "effect/Tracer"
import { Notification } from "../Domain/Delivery.js"
import { describeCause } from "../Domain/Errors.js"
import type { Product } from "../Domain/Product.js"
import type { Round } from "../Domain/Round.js"
import type { Subscriber } from "../Domain/Subscription.js"
import type { NotifierShape } from "../Notifier/Notifier.js"
import * as Metrics from "../Observability/Metrics.js"
import type { PageSpans } from "../Observability/PageSpans.js"
import type { UnsubscribeLinksShape } from "../Unsubscribe/Links.js"
import type { GroupCommit } from "./GroupCommit.js"
import { Halt } from "./Halt.js"
import { instrument } from "./InstrumentedNotifier.js"
import type { RateLimiterShape } from "./RateLimiter/RateLimiter.js"
import { makeAttemptThenRetry } from "./SendPolicy.js"

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

/** The send of `subscriber`, whose start (`sentAt`) the loop took at its turn, `position` among the dispatch's turns. */
export type Send = (subscriber: Subscriber, position: number, sentAt: Date, page: Tracer.Span) => Effect.Effect<void>

export const make = (options: SendOptions): Send => {
  const { clock, commit, halt, links, pages, product, round } = options
  const { productId, restockRound } = round
  const attemptThenRetry = makeAttemptThenRetry(
    { notifier: instrument(options.notifier), limiter: options.limiter },
    { retries: options.retries, onRetry: () => Metric.increment(Metrics.retries) }
  )

  /** A send's outcome: its page told, its turn to the group commit (`sentAt` only when it succeeded). */
  const settle = (subscriber: Subscriber, position: number, page: Tracer.Span, sentAt: Date | undefined) =>
    Effect.zipRight(
      pages.settled(page, sentAt !== undefined),
      commit.settle({
        position,
        userId: subscriber.userId,
        succeeded: sentAt !== undefined,
        delivery: sentAt === undefined ? undefined : { userId: subscriber.userId, sentAt }
      })
    )

  // How long the fork waited to run is measured: a stall here bunches requests on their
  // way to the sender as much as one there would.
  return (subscriber, position, sentAt, page) =>
    Effect.zipRight(
      Effect.sync(() =>
        Metrics.sendStartLag.unsafeUpdate(Math.max(0, clock.unsafeCurrentTimeMillis() - sentAt.getTime()) / 1000, [])
      ),
      attemptThenRetry(
        // Its fields come from decoded rows: validating them again per send costs more than the rest.
        new Notification(
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
      ).pipe(
        Effect.matchCauseEffect({
          onFailure: (cause) => {
            // Interrupted (the round is ending): nothing to settle; the interruption goes on.
            if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause as Cause.Cause<never>)
            const failure = Cause.failureOption(cause)
            const message = Option.isSome(failure)
              ? failure.value.message
              : `the notifier failed unexpectedly: ${describeCause(Cause.squash(cause))}`
            return Effect.zipRight(Deferred.succeed(halt, Halt.SendGaveUp({ message })), settle(subscriber, position, page, undefined))
          },
          onSuccess: () => settle(subscriber, position, page, sentAt)
        }),
        Effect.asVoid
      )
    )
}
