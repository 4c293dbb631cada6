/**
 * The `Restock` service: opens and resumes rounds, runs their dispatch in the
 * background of this process, and answers progress and completion.
 *
 * Shutdown (SPEC §3.8): when the layer's scope closes (SIGTERM), every running
 * round is halted — no send starts after that, the sends in flight are awaited
 * and recorded — and ends `CANCELED_BY_ERROR` with error "shutdown", so that it
 * can be resumed without sending anything twice.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import * as Option from "effect/Option"
import * as PubSub from "effect/PubSub"
import * as Queue from "effect/Queue"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { randomUUID } from "node:crypto"
import { describeCause, NothingToResume, ProductNotFound, RoundInProgress, RoundNotFound } from "../Domain/Errors.js"
import type { ProductId, RestockRound } from "../Domain/Ids.js"
import type { Product } from "../Domain/Product.js"
import type { Round } from "../Domain/Round.js"
import { DeliveryFeed } from "../Feed/Feed.js"
import { Notifier } from "../Notifier/Notifier.js"
import * as Metrics from "../Observability/Metrics.js"
import { Repo } from "../Repo/Repo.js"
import { StockCache } from "../StockCache/StockCache.js"
import type { UnsubscribeLinks } from "../Unsubscribe/Links.js"
import { Halt } from "./Halt.js"
import { RateLimiter } from "./RateLimiter/RateLimiter.js"
import { Restock } from "./Restock.js"
import { dispatchRound } from "./Round.js"
import * as SendWindow from "./SendWindow.js"
import { DispatchSettings } from "./Settings.js"

/** How often progress and completion are re-read from the database (other instances' rounds). */
const pollInterval = Duration.millis(250)

interface RunningRound {
  readonly halt: Deferred.Deferred<Halt>
  readonly done: Deferred.Deferred<void>
}

const roundKey = (productId: ProductId, restockRound: RestockRound) => `${productId}:${restockRound}`

/** Whether a progress listener should hear about `next` after `last`. */
const hasChanged = (last: Round | null, next: Round | null): boolean => {
  if (last === null || next === null) return last !== next
  return last.restockRound !== next.restockRound || last.status !== next.status ||
    last.sentCount !== next.sentCount || last.updatedAt.getTime() !== next.updatedAt.getTime()
}

export const make = Effect.gen(function*() {
  const repo = yield* Repo
  const stockCache = yield* StockCache
  const settings = yield* DispatchSettings
  const dispatchContext = yield* Effect.context<
    Repo | StockCache | RateLimiter | DeliveryFeed | Notifier | DispatchSettings | UnsubscribeLinks
  >()
  const instanceId = randomUUID()
  let attempts = 0
  const running = new Map<string, RunningRound>()
  /** Nudges progress and completion waiters when a round of this process changes status. */
  const statusChanges = yield* PubSub.unbounded<ProductId>()

  // Dispatch fibers live in their own scope, closed after the graceful halt below
  // (finalizers run in reverse order of addition).
  const dispatchScope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
  yield* Effect.addFinalizer(() =>
    Effect.gen(function*() {
      const rounds = [...running.values()]
      yield* Effect.forEach(rounds, (round) => Deferred.succeed(round.halt, Halt.Shutdown()), { discard: true })
      yield* Effect.forEach(rounds, (round) => Deferred.await(round.done), { discard: true, concurrency: "unbounded" })
        .pipe(Effect.timeout(settings.shutdownGrace), Effect.ignore)
      yield* Effect.logInfo(`restock halted ${rounds.length} running round(s) for shutdown`)
    })
  )

  const newLease = Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    attempts += 1
    return {
      now: new Date(now),
      lease: { owner: `${instanceId}#${attempts}`, expiresAt: new Date(now + Duration.toMillis(settings.leaseDuration)) }
    }
  })

  /**
   * A round opened or resumed outside the send window says when it will start
   * sending from its first answer on (SPEC §3.12); its dispatch then waits.
   */
  const waitingAt = (now: Date): { readonly waitingUntil: Date | null } => {
    const window = settings.sendWindow
    if (window === null || SendWindow.isOpen(window, now.getTime())) return { waitingUntil: null }
    return { waitingUntil: new Date(SendWindow.nextOpening(window, now.getTime())) }
  }

  const requireProduct = (productId: ProductId) =>
    repo.getProduct(productId).pipe(
      Effect.flatMap(Option.match({
        onNone: () => Effect.fail(ProductNotFound.of(productId)),
        onSome: Effect.succeed
      }))
    )

  /** Starts the dispatch of a round this process now holds the lease of. */
  const launch = (round: Round, product: Product, owner: string) =>
    Effect.gen(function*() {
      const halt = yield* Deferred.make<Halt>()
      const done = yield* Deferred.make<void>()
      const key = roundKey(round.productId, round.restockRound)
      const entry: RunningRound = { halt, done }
      running.set(key, entry)
      const startedAt = yield* Clock.currentTimeMillis
      yield* PubSub.publish(statusChanges, round.productId)
      yield* dispatchRound({
        round,
        product,
        owner,
        halt,
        onProgress: (changed) => changed.status === round.status ? Effect.void : PubSub.publish(statusChanges, changed.productId)
      }).pipe(
        Effect.tap((finished) =>
          Effect.gen(function*() {
            const elapsed = (yield* Clock.currentTimeMillis) - startedAt
            yield* Metric.increment(Metric.tagged(Metrics.roundsFinished, "status", finished.status))
            yield* Metric.update(Metrics.roundDuration, elapsed / 1000)
            yield* Effect.logInfo(`round ended ${finished.status}`, { sentCount: finished.sentCount, error: finished.error })
          })
        ),
        // The dispatch could not start (stock unreadable) or broke: end the round in error if
        // the database lets us; otherwise its lease lapses and an operator can resume it.
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.void : Effect.gen(function*() {
            yield* Effect.logError("round stopped by an error", cause)
            const now = new Date(yield* Clock.currentTimeMillis)
            yield* repo.finishRound(round.productId, round.restockRound, owner, {
              status: "CANCELED_BY_ERROR",
              error: describeCause(Cause.squash(cause)),
              now
            }).pipe(Effect.ignore)
          })
        ),
        Effect.ensuring(
          Effect.suspend(() => {
            // A resume of this round may already have launched again under the same key.
            if (running.get(key) === entry) running.delete(key)
            return Deferred.succeed(done, undefined).pipe(Effect.zipRight(PubSub.publish(statusChanges, round.productId)))
          })
        ),
        Effect.annotateLogs({ productId: round.productId, restockRound: round.restockRound }),
        Effect.withSpan("restock.round", { attributes: { productId: round.productId, restockRound: round.restockRound } }),
        Effect.provide(dispatchContext),
        Effect.forkIn(dispatchScope)
      )
    })

  const trigger = (productId: ProductId, options?: { readonly stock?: number | undefined }) =>
    Effect.gen(function*() {
      const product = yield* requireProduct(productId)
      // Checked before the stock is written, so a conflicting trigger changes nothing;
      // the unique index in `openRound` is what actually guarantees one round at a time.
      const latest = yield* repo.latestRound(productId)
      if (Option.isSome(latest) && latest.value.status === "IN_PROGRESS") {
        return yield* Effect.fail(RoundInProgress.of(productId, latest.value.restockRound))
      }
      if (options?.stock !== undefined) yield* stockCache.set(productId, options.stock)
      const { lease, now } = yield* newLease
      const round = yield* repo.openRound(productId, lease, now, waitingAt(now))
      yield* launch(round, product, lease.owner)
      return round
    }).pipe(Effect.withSpan("restock.trigger", { attributes: { productId } }))

  const resume = (productId: ProductId) =>
    Effect.gen(function*() {
      const product = yield* requireProduct(productId)
      const latest = yield* repo.latestRound(productId)
      // Still being sent here (even if its lease lapsed meanwhile). A round whose terminal status
      // is written is done with, whether or not its fiber has finished cleaning up.
      if (
        Option.isSome(latest) && latest.value.status === "IN_PROGRESS" &&
        running.has(roundKey(productId, latest.value.restockRound))
      ) {
        return yield* Effect.fail(NothingToResume.of(productId, `round ${latest.value.restockRound} is still being sent`))
      }
      const { lease, now } = yield* newLease
      const round = yield* repo.reopenRound(productId, lease, now, waitingAt(now))
      yield* launch(round, product, lease.owner)
      return round
    }).pipe(Effect.withSpan("restock.resume", { attributes: { productId } }))

  /** Waits for a status change of this product here, or the poll interval, whichever comes first. */
  const nextChange = (nudges: Queue.Dequeue<ProductId>, productId: ProductId) =>
    Effect.raceFirst(
      Effect.sleep(pollInterval),
      Queue.take(nudges).pipe(Effect.repeat({ until: (changed) => changed === productId }), Effect.asVoid)
    )

  const awaitRound = (productId: ProductId, restockRound: RestockRound) =>
    Effect.scoped(Effect.gen(function*() {
      const nudges = yield* PubSub.subscribe(statusChanges)
      while (true) {
        const local = running.get(roundKey(productId, restockRound))
        if (local !== undefined) yield* Deferred.await(local.done)
        const round = yield* repo.getRound(productId, restockRound)
        if (Option.isNone(round)) return yield* Effect.fail(RoundNotFound.of(productId, restockRound))
        if (round.value.isTerminal) return round.value
        yield* nextChange(nudges, productId)
      }
    }))

  const progress = (productId: ProductId) =>
    Stream.unwrapScoped(Effect.gen(function*() {
      yield* requireProduct(productId)
      const nudges = yield* PubSub.subscribe(statusChanges)
      const latest = repo.latestRound(productId).pipe(Effect.map(Option.getOrNull))
      const first = yield* latest
      // Emits while a round is sending (at least every poll interval) and on every change;
      // ends once a round seen in progress has reached its terminal status.
      const following = Stream.unfoldEffect(
        { last: first, ended: false },
        (state) =>
          state.ended
            ? Effect.succeed(Option.none())
            : Effect.gen(function*() {
              while (true) {
                yield* nextChange(nudges, productId)
                const next = yield* latest
                const sending = next !== null && next.status === "IN_PROGRESS"
                if (sending || hasChanged(state.last, next)) {
                  const ended = next !== null && next.isTerminal && state.last !== null &&
                    state.last.restockRound === next.restockRound && state.last.status === "IN_PROGRESS"
                  return Option.some([next, { last: next, ended }] as const)
                }
              }
            })
      )
      return Stream.make(first).pipe(Stream.concat(following))
    }))

  return Restock.of({ trigger, resume, awaitRound, progress })
})

/** The `Restock` service, running its rounds in this process. */
export const layer = Layer.scoped(Restock, make)
