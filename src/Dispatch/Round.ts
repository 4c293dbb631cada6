/**
 * The dispatch of one round, as a `Stream` that reads like the requirement:
 *
 *   pending subscribers, in pages, in subscription order
 *     → wait for a slot of the unrecorded window and a rate-limit permit
 *     → stop if the product sold out (stock ≤ its minimum), or complete if the
 *       round reached its fair share of the stock; wait for the send window to
 *       open if it is closed (all checked right before each send starts)
 *     → start the send (sends overlap, but start in subscription order)
 *     → as each send settles, its outcome goes to the group commit
 *     → record deliveries in batches; the contiguous successful prefix
 *       (`last_sent_user_id`) advances over what has been recorded
 *     → terminal status, written after every record before it.
 *
 * Each job has a module of its own: the settings (`Settings.ts`), one send
 * with its retries and its outcome (`Send.ts`, over `SendPolicy.ts` and
 * `InstrumentedNotifier.ts`), the storage retry (`Durably.ts`), the lease
 * heartbeat (`LeaseHeartbeat.ts`), the window of unrecorded sends
 * (`Window.ts`), the wait for a closed send window (`WindowWait.ts`) and the
 * group commit (`GroupCommit.ts`); this module is the start loop that joins
 * them.
 *
 * Durability: a send holds its slot of the window from before it starts
 * until its record is committed, so at most `unrecordedWindow` sends are
 * ever sent-or-in-flight but not yet recorded: what a SIGKILL can make a
 * resume repeat (SPEC §3.7: 25 at the default limit). Outcomes are recorded
 * as they come, not in subscription order, so one slow send holds up only
 * its own slot, never the sends after it.
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Stream from "effect/Stream"
import type * as Tracer from "effect/Tracer"
import type { Product } from "../Domain/Product.js"
import type { Round } from "../Domain/Round.js"
import type { Subscriber } from "../Domain/Subscription.js"
import { DeliveryFeed } from "../Feed/Feed.js"
import { Notifier } from "../Notifier/Notifier.js"
import * as Metrics from "../Observability/Metrics.js"
import * as PageSpans from "../Observability/PageSpans.js"
import { Repo } from "../Repo/Repo.js"
import { StockCache } from "../StockCache/StockCache.js"
import { UnsubscribeLinks } from "../Unsubscribe/Links.js"
import { makeDurably } from "./Durably.js"
import * as GroupCommit from "./GroupCommit.js"
import { Halt, terminalOutcome } from "./Halt.js"
import { keepLease } from "./LeaseHeartbeat.js"
import { RateLimiter } from "./RateLimiter/RateLimiter.js"
import * as Send from "./Send.js"
import { DispatchSettings, unrecordedWindow } from "./Settings.js"
import { makeUnrecordedWindow } from "./Window.js"
import * as WindowWait from "./WindowWait.js"

/**
 * The fair share of scarce stock (SPEC §3.11): how many sends a round may
 * have made at a given stock, or `null` for no cap.
 */
export const fairShare = (product: Product): ((stock: number) => number) | null => {
  const { minimumStock, notifyPerUnit } = product
  return notifyPerUnit === null ? null : (stock) => notifyPerUnit * (stock - minimumStock)
}

export interface DispatchInput {
  readonly round: Round
  readonly product: Product
  /** The lease owner: this dispatcher's id; every write is fenced by it. */
  readonly owner: string
  /** Completed by whoever stops the round early: sold out, a failed send, shutdown. */
  readonly halt: Deferred.Deferred<Halt>
  /** Called with the round after every committed change (progress streams). */
  readonly onProgress: (round: Round) => Effect.Effect<void>
}

/**
 * Sends one round to its pending subscribers and returns its terminal state.
 * Fails with `StorageUnavailable` only if the database stayed away longer than
 * `storageRetryWindow`: the round is then left `IN_PROGRESS` with a lease that
 * lapses, so an operator can resume it.
 */
export const dispatchRound = (input: DispatchInput) =>
  Effect.gen(function*() {
    const repo = yield* Repo
    const stockCache = yield* StockCache
    const limiter = yield* RateLimiter
    const notifier = yield* Notifier
    const feed = yield* DeliveryFeed
    const settings = yield* DispatchSettings
    const links = yield* UnsubscribeLinks
    const clock = yield* Effect.clock
    const { halt, onProgress, owner, product, round } = input
    const { productId, restockRound } = round
    const haltWith = (reason: Halt) => Deferred.succeed(halt, reason)
    const durably = makeDurably(settings.storageRetryWindow, (message) => haltWith(Halt.StorageFailed({ message })))

    // Sold out: the watch completes `halt` as soon as stock ≤ the minimum is visible. The
    // product's controls are read as the round starts: a change applies to rounds after it.
    const watch = yield* stockCache.watch(productId, product.minimumStock)
    yield* watch.soldOut.pipe(Effect.zipRight(haltWith(Halt.SoldOut())), Effect.forkScoped)
    yield* keepLease({
      repo,
      productId,
      restockRound,
      owner,
      leaseDuration: settings.leaseDuration,
      onLost: haltWith(Halt.LeaseLost())
    })

    const cutShort = yield* Ref.make(false)
    const pages = yield* PageSpans.make(settings.pageSize)
    const windowSize = unrecordedWindow(settings, limiter.limitPerSecond)
    // A slot is taken before a send starts and given back once its record is committed.
    const unrecorded = yield* makeUnrecordedWindow(windowSize)
    const commit = yield* GroupCommit.make({
      repo,
      feed,
      durably,
      round,
      owner,
      productName: product.name,
      unrecorded,
      windowSize,
      limitPerSecond: limiter.limitPerSecond,
      maxRecordBatch: settings.maxRecordBatch,
      onLeaseLost: haltWith(Halt.LeaseLost()),
      onProgress
    })
    let positions = 0
    /** Sends this attempt has started; with the round's `sentCount` before it, what the fair share counts. */
    let sendsStarted = 0
    const audienceCap = fairShare(product)
    const windowWait = yield* WindowWait.make(settings.sendWindow, { repo, durably, productId, restockRound, owner, halt, onProgress })
    // Built with the tracer off, as the loop runs: the fibers of retries inherit that.
    const sends = yield* Effect.withTracerEnabled(Send.make({
      notifier,
      limiter,
      links,
      clock,
      round,
      product,
      retries: settings.retries,
      pages,
      commit,
      halt
    }), false)

    /** A rate-limit permit: `false` if the limiter's storage failed (the round is halted then). */
    const acquirePermit = limiter.acquire.pipe(
      Effect.as(true),
      Effect.catchAll((error) => haltWith(Halt.StorageFailed({ message: error.message })).pipe(Effect.as(false)))
    )

    /** The turn's end when the round must stop: its slot back, the round cut short. */
    const stopTurn = Effect.zipRight(unrecorded.release(1), Effect.as(Ref.set(cutShort, true), false))

    /**
     * Takes one subscriber's turn: starts its send, or passes on a user
     * recorded before a resume. Answers `false` if the round must stop
     * first. From the last check to the start nothing yields, so no send
     * starts once stock ≤ 0 is visible to this process.
     *
     * Plain functions, each returning the turn's next effect, with the slot
     * of the window and the page taken at once when they are free: as a
     * generator over effects a turn allocated 1–1.5 KiB more (the engine
     * over in-memory ports, rounds of 2,000 under the heap profiler: 33.3
     * against 32.3 KiB per send at 500/s, 12.2 against 10.7 limit lifted).
     */
    const takeTurn = (subscriber: Subscriber): Effect.Effect<boolean> => {
      const position = positions++
      if (subscriber.alreadyRecorded) {
        // Not sent again, but it holds a slot until its batch is written like any turn: what
        // keeps the writer's queue within the window.
        const pass = () => {
          commit.settle({ position, userId: subscriber.userId, succeeded: true, delivery: undefined })
          return true
        }
        return unrecorded.tryTake() ? Effect.succeed(pass()) : Effect.map(unrecorded.take, pass)
      }
      return sendTurn(subscriber, position)
    }

    /** A slot of the window, then a permit. */
    const sendTurn = (subscriber: Subscriber, position: number): Effect.Effect<boolean> =>
      unrecorded.tryTake()
        ? withPermit(subscriber, position)
        : Effect.flatMap(unrecorded.take, () => withPermit(subscriber, position))

    const withPermit = (subscriber: Subscriber, position: number): Effect.Effect<boolean> => {
      // Timed in place, the permit's effect built once: `Metrics.timed` and a pipeline built per
      // turn allocated ~2 KiB per send more (rounds of 2,000 at 500/s under the heap profiler).
      const waitFrom = clock.unsafeCurrentTimeNanos()
      return Effect.flatMap(acquirePermit, (permitted) => {
        Metrics.rateLimitWait.unsafeUpdate(Number(clock.unsafeCurrentTimeNanos() - waitFrom) / 1e9, [])
        // A halt while waiting is seen right after: the wait is at most one record write (for
        // a slot) plus one spacing (for a permit), and nothing is sent meanwhile.
        if (!permitted) return stopTurn
        return Effect.flatMap(Deferred.isDone(halt), (halted) => halted ? stopTurn : whileInStock(subscriber, position))
      })
    }

    const whileInStock = (subscriber: Subscriber, position: number): Effect.Effect<boolean> =>
      Effect.flatMap(watch.isSoldOut, (soldOut) => {
        if (soldOut) return Effect.zipRight(haltWith(Halt.SoldOut()), stopTurn)
        if (audienceCap === null) return startInWindow(subscriber, position)
        return Effect.flatMap(watch.stock, (stock) =>
          round.sentCount + sendsStarted >= audienceCap(stock)
            ? Effect.zipRight(haltWith(Halt.AudienceReached()), stopTurn)
            : startInWindow(subscriber, position))
      })

    const startInWindow = (subscriber: Subscriber, position: number): Effect.Effect<boolean> => {
      const now = clock.unsafeCurrentTimeMillis()
      if (now >= windowWait.closesAt()) {
        // Not a send: the slot goes back while the round waits, so what is in flight is recorded.
        return Effect.zipRight(
          unrecorded.release(1),
          Effect.flatMap(windowWait.untilOpen(now), (open) =>
            open ? sendTurn(subscriber, position) : Effect.as(Ref.set(cutShort, true), false))
        )
      }
      const start = (page: Tracer.Span) => {
        sendsStarted++
        // Traced by its page, never on its own (nor the notifier's requests). The loop
        // outlives every send: it drains the window of unrecorded sends before it returns.
        sends.start(subscriber, position, new Date(now), page)
        return true
      }
      const page = pages.startedNow()
      return page !== undefined ? Effect.succeed(start(page)) : Effect.map(pages.started, start)
    }

    const after = round.lastSentUserId === null
      ? Option.none()
      : yield* repo.subscriptionIdOf(productId, round.lastSentUserId)

    const subscribers = repo.pendingSubscribers(productId, {
      restockRound,
      after: Option.getOrNull(after),
      pageSize: settings.pageSize
    }).pipe(
      // A page that cannot be read stops the round like any other halt: the
      // sends already started are still awaited and recorded.
      Stream.catchAll((error) =>
        Stream.fromEffect(
          haltWith(Halt.StorageFailed({ message: error.message })).pipe(Effect.zipRight(Ref.set(cutShort, true)))
        ).pipe(Stream.drain)
      ),
      // The next page is read while this one is sent: a page read at the limit would
      // otherwise stall the starts for its duration (two pages in memory at most).
      Stream.bufferChunks({ capacity: 1 })
    )

    // Page by page, a turn per subscriber, until the pages end or a turn says stop. (A plain
    // loop: `Stream.runForEachWhile` keeps a continuation per element until the stream ends,
    // which grew the heap by ~300 bytes per subscriber over a round.)
    const startInOrder = Effect.gen(function*() {
      const pull = yield* Stream.toPull(subscribers)
      pages: while (true) {
        const page = yield* Effect.option(pull)
        if (Option.isNone(page)) break
        for (const subscriber of page.value) if (!(yield* takeTurn(subscriber))) break pages
      }
      // Every slot back means every send started has been recorded; then the writer may stop.
      // (Not on interruption: then the writer has failed, and the queue may be full.)
      yield* unrecorded.drain
      yield* commit.end
    }).pipe(
      // Stopped early (the writer failed, or the round is interrupted): the sends in flight
      // stop with it, unsettled. (After a drain there are none.)
      Effect.onExit(() => sends.interruptAll)
    )

    if (yield* watch.isSoldOut) {
      // Started sold out (at or below the minimum): nothing is sent, the round ends CANCELED_BY_SOLD_OUT.
      yield* haltWith(Halt.SoldOut())
      yield* Ref.set(cutShort, true)
    } else {
      // The tracer off once for the loop and the sends it forks, not per send (a `locally` per
      // send copied the fiber's FiberRefs twice); the pages turn it on for their own spans.
      yield* Effect.all([Effect.withTracerEnabled(startInOrder, false), commit.run], { concurrency: 2, discard: true }).pipe(
        Effect.ensuring(pages.close)
      )
    }

    const haltReason = yield* Deferred.poll(halt).pipe(
      Effect.flatMap(Option.match({ onNone: () => Effect.succeed(undefined), onSome: (reason) => reason }))
    )
    const outcome = terminalOutcome(haltReason, yield* Ref.get(cutShort))
    if (outcome === undefined) {
      // Taken over by another dispatcher: report the round as the database has it.
      return yield* repo.getRound(productId, restockRound).pipe(Effect.map(Option.getOrElse(() => round)))
    }
    const now = new Date(yield* Clock.currentTimeMillis)
    const finished = yield* durably(repo.finishRound(productId, restockRound, owner, { ...outcome, now })).pipe(
      Effect.catchTag("LeaseLost", () =>
        repo.getRound(productId, restockRound).pipe(Effect.map(Option.getOrElse(() => round))))
    )
    yield* onProgress(finished)
    return finished
  }).pipe(Effect.scoped)
