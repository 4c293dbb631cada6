/**
 * `TestClock`, polling promptly. Each time `TestClock.adjust` wakes a sleep it
 * first waits until every fiber of the test has suspended, checking twice
 * with a real `setTimeout(0)` in between, and Node rounds that to a whole
 * millisecond: a round of 10,000 sends, with a sleep per start and one per
 * send, spent most of its 40 seconds in those timers. Here the same checks
 * poll with `setImmediate` (after pending I/O, like the timer, but without
 * the millisecond). Nothing else of `TestClock` changes: time still moves
 * only when `adjust` moves it, and only once every fiber waits.
 */
import { Effect, TestClock } from "effect"

const yieldPromptly: Effect.Effect<void> = Effect.async<void>((resume) => {
  const immediate = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(immediate))
})

/**
 * Makes the `TestClock` of this test poll with `setImmediate`; run it first in
 * the test. Under the live clock (`it.live`) it does nothing.
 */
export const pollPromptly: Effect.Effect<void> = Effect.flatMap(TestClock.testClock(), (clock) =>
  Effect.sync(() => {
    // `yieldTimer` is the `TestClockImpl` instance's own field, read at each poll.
    if ("yieldTimer" in clock && typeof clock.adjust === "function") {
      ;(clock as unknown as { yieldTimer: Effect.Effect<void> }).yieldTimer = yieldPromptly
    }
  }))
