/**
 * An in-memory `Notifier` that records what it receives: for tests, and for
 * library users who want to see what a round would send. It keeps the
 * `Notifier` contract the webhook keeps (`test/contracts/Notifier.contract.ts`),
 * so that what a test sees through it holds of the webhook too.
 *
 * Every call is recorded at receipt with the `Clock` time, then answered
 * after the scripted latency (through `Clock`, so `TestClock` drives it) with
 * success or the scripted failure. A hook may run on receipt, e.g. a test
 * that sells the product out when the k-th notification arrives.
 *
 *     Recording.layer({
 *       latency: (call) => call.index % 2 === 0 ? "30 millis" : "10 millis",
 *       failure: Recording.failUsers([UserId.make(7)], { times: 1 }),
 *       onReceive: (call) => call.index === 100 ? soldOut : Effect.void
 *     })
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberId from "effect/FiberId"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import type { Notification } from "../Domain/Delivery.js"
import type { UserId } from "../Domain/Ids.js"
import { Notifier, type NotifierShape, SendFailed } from "./Notifier.js"

/** One `send` as the recording notifier received it. */
export interface Call {
  /** 1 for the first call, in order of receipt. */
  readonly index: number
  readonly notification: Notification
  /** How many times this notification (its idempotency key) was received, this call included. */
  readonly attempt: number
  /** `Clock` time of receipt, in milliseconds. */
  readonly receivedAt: number
  /** The scripted failure it was answered with; `undefined` when delivered. */
  readonly failure: SendFailed | undefined
}

/** What a call is answered with; `undefined` for success. */
export type FailureScript = (call: Omit<Call, "failure">) => SendFailed | undefined

export interface RecordingOptions<R = never> {
  /** Time from receipt to answer, per call (default: none). */
  readonly latency?: Duration.DurationInput | ((call: Call) => Duration.DurationInput) | undefined
  readonly failure?: FailureScript | undefined
  /** Runs on receipt, before the latency. */
  readonly onReceive?: ((call: Call) => Effect.Effect<void, never, R>) | undefined
  /**
   * Whether it also answers through a callback (`NotifierShape.start`), as
   * the webhook does (default `true`): the dispatch then makes first attempts
   * that way. `false` leaves it `send` alone, as a notifier written with
   * effects only is.
   */
  readonly callback?: boolean | undefined
}

export interface RecordingShape {
  /** Every call received so far, in order of receipt. */
  readonly calls: Effect.Effect<ReadonlyArray<Call>>
  /** The notifications that were answered with success, in order of receipt. */
  readonly delivered: Effect.Effect<ReadonlyArray<Notification>>
}

/** Reads what the recording notifier received. */
export class Recording extends Context.Tag("restock/Notifier/Recording")<Recording, RecordingShape>() {}

interface FailOptions {
  readonly reason?: "Transient" | "Permanent" | undefined
  /** Fail only the first `times` attempts of each matching notification (default: every attempt). */
  readonly times?: number | undefined
  readonly retryAfter?: Duration.DurationInput | undefined
}

const failure = (what: string, options: FailOptions): SendFailed =>
  new SendFailed({
    reason: options.reason ?? "Transient",
    message: `scripted ${(options.reason ?? "Transient").toLowerCase()} failure for ${what}`,
    retryAfter: options.retryAfter === undefined ? undefined : Duration.decode(options.retryAfter)
  })

const withinTimes = (call: Omit<Call, "failure">, options: FailOptions) =>
  options.times === undefined || call.attempt <= options.times

/** Fails the notifications of these users (transient unless told otherwise). */
export const failUsers = (userIds: Iterable<UserId>, options: FailOptions = {}): FailureScript => {
  const users = new Set<number>(userIds)
  return (call) =>
    users.has(call.notification.userId) && withinTimes(call, options)
      ? failure(`user ${call.notification.userId}`, options)
      : undefined
}

/** Fails the k-th call (1-based, counting every call, retries included). */
export const failCall = (k: number, options: Omit<FailOptions, "times"> = {}): FailureScript => (call) =>
  call.index === k ? failure(`call ${k}`, options) : undefined

/** Fails every call. */
export const failAll = (options: FailOptions = {}): FailureScript => (call) =>
  withinTimes(call, options) ? failure(`user ${call.notification.userId}`, options) : undefined

/** The first script that fails a call decides. */
export const firstOf = (...scripts: ReadonlyArray<FailureScript>): FailureScript => (call) => {
  for (const script of scripts) {
    const failed = script(call)
    if (failed !== undefined) return failed
  }
  return undefined
}

export const make = <R = never>(
  options: RecordingOptions<R> = {}
): Effect.Effect<Context.Context<Notifier | Recording>, never, R> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<R>()
    // The callback form runs `send` on a fiber of this runtime (its clock: the test's).
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const calls: Array<Call> = []
    const attempts = new Map<string, number>()
    const { latency, onReceive } = options

    const receive = (notification: Notification) =>
      Effect.map(Clock.currentTimeMillis, (receivedAt): Call => {
        const key = notification.idempotencyKey
        const attempt = (attempts.get(key) ?? 0) + 1
        attempts.set(key, attempt)
        const received = { index: calls.length + 1, notification, attempt, receivedAt }
        const call = { ...received, failure: options.failure?.(received) }
        calls.push(call)
        return call
      })

    const send = (notification: Notification): Effect.Effect<void, SendFailed> =>
      Effect.gen(function*() {
        const call = yield* receive(notification)
        if (onReceive !== undefined) yield* Effect.provide(onReceive(call), context)
        const wait = typeof latency === "function" ? latency(call) : latency
        if (wait !== undefined) yield* Effect.sleep(wait)
        if (call.failure !== undefined) return yield* Effect.fail(call.failure)
      })

    const recording: RecordingShape = {
      calls: Effect.sync(() => calls.slice()),
      delivered: Effect.sync(() => calls.filter((call) => call.failure === undefined).map((call) => call.notification))
    }
    const start: NonNullable<NotifierShape["start"]> = (notification, done) => {
      let aborted = false
      const fiber = runFork(send(notification))
      fiber.addObserver((exit) => {
        if (!aborted) done(exit)
      })
      return () => {
        aborted = true
        fiber.unsafeInterruptAsFork(FiberId.none)
      }
    }
    const notifier = options.callback === false ? { send } : { send, start }
    return Context.make(Notifier, notifier).pipe(Context.add(Recording, recording))
  })

/** A recording `Notifier`, and the `Recording` to read it back. */
export const layer = <R = never>(options: RecordingOptions<R> = {}): Layer.Layer<Notifier | Recording, never, R> =>
  Layer.effectContext(make(options))
