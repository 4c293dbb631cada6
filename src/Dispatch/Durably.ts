/**
 * A record or status write that outlasts a database outage: retried while
 * the database is away (`StorageUnavailable`), for at most the round's
 * `storageRetryWindow`, backing off from 100 ms to every 2 s. The first
 * failure calls `onUnavailable`, which halts the round: no send starts while
 * its records cannot be written, and what was sent is recorded once the
 * database is back (or the round is left resumable when it is not).
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"

export type Durably = <A, E extends { readonly _tag: string; readonly message: string }>(
  write: Effect.Effect<A, E>
) => Effect.Effect<A, E>

export const makeDurably = (
  retryWindow: Duration.Duration,
  onUnavailable: (message: string) => Effect.Effect<unknown>
): Durably => {
  const schedule = Schedule.exponential("100 millis").pipe(
    Schedule.union(Schedule.spaced("2 seconds")),
    Schedule.upTo(retryWindow)
  )
  const unavailable = (error: { readonly _tag: string }) => error._tag === "StorageUnavailable"
  // The retry machinery (the schedule's driver and its state) is only built once a write has
  // failed: built for every record batch it allocated ~16 KiB a batch (measured in isolation).
  // The first failure is then replayed to it, so the waits are those of one `Effect.retry`.
  return (write) => {
    const attempt = write.pipe(Effect.tapError((error) => unavailable(error) ? onUnavailable(error.message) : Effect.void))
    return Effect.catchIf(attempt, unavailable, (first) => {
      let replayed = false
      const again = Effect.suspend(() => {
        if (replayed) return attempt
        replayed = true
        return Effect.fail(first)
      })
      return Effect.retry(again, { while: unavailable, schedule })
    })
  }
}
