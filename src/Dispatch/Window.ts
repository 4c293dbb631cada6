/**
 * The window of unrecorded sends (see `Round.ts`): `size` slots, one taken
 * before a send starts and given back once its record is committed, so that
 * at most `size` sends are ever sent but not yet durable.
 *
 * It also tells the record writer when the window runs short. A small batch
 * of records waits a little for company (fewer transactions at low rates),
 * but not while the window is crowded: then every millisecond a record
 * waits is a millisecond the next send may have to wait for a slot, and at
 * the limit a send that waits loses its rate-limit slot.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"

/** The share of the window in use from which records are written without waiting for company. */
export const crowdedShare = 3 / 4

export interface UnrecordedWindow {
  /** Takes a slot, waiting for one if the window is full. */
  readonly take: Effect.Effect<void>
  /** Takes a slot if one is free, at once: `false` (nothing taken) when `take` would wait. */
  readonly tryTake: () => boolean
  /** Gives `count` slots back: their sends are recorded (or never started). */
  readonly release: (count: number) => Effect.Effect<void>
  /** Takes every slot: returns once every send started has been given back. */
  readonly drain: Effect.Effect<void>
  /** Waits `duration`, or less: not at all if the window is crowded, and no longer once it becomes so. */
  readonly lingerUnlessCrowded: (duration: Duration.DurationInput) => Effect.Effect<void>
}

/**
 * The window, and its linger timer: one fiber for the window's life (in the
 * scope), which wakes each lingering writer at its deadline unless crowding
 * has woken it first. Per linger, a race of a sleep against the crowding
 * signal forked two fibers: 51 KiB allocated, against 28 KiB for a deadline
 * handed to the timer (2,000 lingers one after another, under the heap
 * profiler); at 500/s a writer lingers once every 6–7 sends. The timer
 * takes the deadlines in order, each later than the one before (one writer,
 * one duration), so a deadline whose linger crowding has cut short delays
 * none after it.
 *
 * The slots are a count, not a semaphore: the start loop takes one per send
 * and there is nearly always one free, which `tryTake` hands out without an
 * effect. Effect's semaphore suspends the fiber on every take: the engine
 * over in-memory ports allocated 39.0 KiB per send at 500/s with it, 33.6
 * with this (rounds of 2,000 under the heap profiler). A take that must wait is
 * woken by a release and counts the slot itself once it runs, as Effect's
 * semaphore does, so a waiter interrupted meanwhile leaves none taken.
 */
export const makeUnrecordedWindow = (size: number): Effect.Effect<UnrecordedWindow, never, Scope.Scope> =>
  Effect.gen(function*() {
    const deadlines = yield* Queue.unbounded<Linger>()
    // Read in place (`unsafeCurrentTimeNanos`): `TestClock`'s `currentTimeNanos` effect cannot
    // convert a fractional millisecond, which its unsafe reading rounds down.
    const clock = yield* Effect.clock
    // On the Clock's monotonic time: a wall clock stepped back would stretch a linger.
    yield* Queue.take(deadlines).pipe(
      Effect.flatMap(({ untilNanos, wake }) =>
        Effect.suspend(() => {
          const now = clock.unsafeCurrentTimeNanos()
          return Effect.zipRight(
            now < untilNanos ? clock.sleep(Duration.nanos(untilNanos - now)) : Effect.void,
            Deferred.succeed(wake, undefined)
          )
        })
      ),
      Effect.forever,
      Effect.forkScoped
    )
    const crowdedAt = Math.max(1, Math.ceil(size * crowdedShare))
    let held = 0
    // Completed (and cleared) when the window becomes crowded while a writer lingers.
    let crowded: Deferred.Deferred<void> | undefined
    // Takes waiting for `count` free slots: each is told when slots come back.
    const waiting = new Set<() => void>()

    const tryTakeMany = (count: number): boolean => {
      if (size - held < count) return false
      held += count
      if (held >= crowdedAt && crowded !== undefined) {
        const lingering = crowded
        crowded = undefined
        Deferred.unsafeDone(lingering, Effect.void)
      }
      return true
    }

    const takeMany = (count: number): Effect.Effect<void> =>
      Effect.suspend(() =>
        tryTakeMany(count) ? Effect.void : Effect.async<void>((resume) => {
          const woken = () => {
            if (size - held < count) return
            waiting.delete(woken)
            resume(takeMany(count))
          }
          waiting.add(woken)
          // The run loop may yield between the check above and this registration: a release
          // meanwhile woke nobody, so the slots are looked at again now that it is registered.
          woken()
          return Effect.sync(() => waiting.delete(woken))
        })
      )

    const release = (count: number) =>
      Effect.sync(() => {
        held -= count
        for (const woken of waiting) woken()
      })

    const lingerUnlessCrowded = (duration: Duration.DurationInput) =>
      Effect.suspend(() => {
        if (held >= crowdedAt) return Effect.void
        return Effect.flatMap(Deferred.make<void>(), (wake) => {
          // Crowded since the check above (a few steps ago, where the run loop may yield).
          if (held >= crowdedAt) return Effect.void
          crowded = wake
          const untilNanos = clock.unsafeCurrentTimeNanos() + BigInt(Math.round(Duration.toMillis(duration) * 1e6))
          return Queue.offer(deadlines, { untilNanos, wake }).pipe(
            Effect.zipRight(Deferred.await(wake)),
            Effect.ensuring(Effect.sync(() => {
              if (crowded === wake) crowded = undefined
            }))
          )
        })
      })

    return { take: takeMany(1), tryTake: () => tryTakeMany(1), release, drain: takeMany(size), lingerUnlessCrowded }
  })

/** A writer's linger, as the timer sees it: when it ends, and how to end it. */
interface Linger {
  readonly untilNanos: bigint
  readonly wake: Deferred.Deferred<void>
}
