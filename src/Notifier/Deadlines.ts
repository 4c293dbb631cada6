/**
 * One timeout for many concurrent operations, on one Clock-driven timer.
 *
 * `Effect.timeoutFail` forks a fiber and races a sleep for every operation it
 * guards. On the webhook's path that was one fiber, one timer and one race per
 * send, for a timeout that almost never fires. Here every operation has the
 * same timeout and starts in the Clock's order, so their deadlines come in
 * order too: one fiber sleeps until the oldest pending deadline, expires
 * what is due, and sleeps again; an operation that settles first is only
 * marked (and dropped from the front of the line as soon as it is there).
 * Time is the Clock's, so `TestClock` drives it exactly.
 *
 * (Should the wall clock step back, a deadline taken after the step may sit
 * behind an older, later one and expire late by the size of the step.)
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** An operation under a deadline. */
export interface Timed {
  /** When it expires, in the Clock's epoch milliseconds. */
  readonly deadline: number
  /** Set once it has settled, by whatever settled it; an expired one is settled too. */
  readonly settled: boolean
  /** Called once, at the deadline, if it has not settled by then. */
  expire(): void
}

export interface Deadlines {
  /** The Clock's time now, in epoch milliseconds: what a deadline is computed from. */
  readonly now: () => number
  /** Watches `timed` until it settles or expires. Deadlines must not come earlier than those before them. */
  readonly track: (timed: Timed) => void
  /** Call after an operation settles: lets the line drop it as soon as it is at the front. */
  readonly settled: () => void
}

/** The tracker, with its one fiber in the current scope (interrupted when the scope closes). */
export const make: Effect.Effect<Deadlines, never, Scope.Scope> = Effect.gen(function*() {
  const clock = yield* Effect.clock
  // The line of tracked operations, oldest first, from `head` on (a queue without shifting).
  const line: Array<Timed | undefined> = []
  let head = 0
  let wake: Deferred.Deferred<void> | undefined

  const dropSettled = () => {
    while (head < line.length && line[head]!.settled) line[head++] = undefined
    if (head === line.length) {
      line.length = 0
      head = 0
    } else if (head >= 1024 && head * 2 >= line.length) {
      line.splice(0, head)
      head = 0
    }
  }

  const expireDue = Effect.gen(function*() {
    while (true) {
      dropSettled()
      const next = line[head]
      if (next === undefined) {
        const waiting = yield* Deferred.make<void>()
        wake = waiting
        yield* Deferred.await(waiting)
        continue
      }
      const wait = next.deadline - clock.unsafeCurrentTimeMillis()
      if (wait > 0) {
        yield* clock.sleep(Duration.millis(wait))
        continue
      }
      line[head++] = undefined
      next.expire()
    }
  })
  yield* Effect.forkScoped(expireDue)

  return {
    now: () => clock.unsafeCurrentTimeMillis(),
    track: (timed) => {
      line.push(timed)
      if (wake !== undefined) {
        const waiting = wake
        wake = undefined
        Deferred.unsafeDone(waiting, Effect.void)
      }
    },
    settled: dropSettled
  }
})
