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
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"

/** The share of the window in use from which records are written without waiting for company. */
export const crowdedShare = 3 / 4

export interface UnrecordedWindow {
  /** Takes a slot, waiting for one if the window is full. */
  readonly take: Effect.Effect<void>
  /** Gives `count` slots back: their sends are recorded (or never started). */
  readonly release: (count: number) => Effect.Effect<void>
  /** Takes every slot: returns once every send started has been given back. */
  readonly drain: Effect.Effect<void>
  /** Waits `duration`, or less: not at all if the window is crowded, and no longer once it becomes so. */
  readonly lingerUnlessCrowded: (duration: Duration.DurationInput) => Effect.Effect<void>
}

export const makeUnrecordedWindow = (size: number): Effect.Effect<UnrecordedWindow> =>
  Effect.map(Effect.makeSemaphore(size), (slots) => {
    const crowdedAt = Math.max(1, Math.ceil(size * crowdedShare))
    let held = 0
    // Completed (and cleared) when the window becomes crowded while a writer lingers.
    let crowded: Deferred.Deferred<void> | undefined

    const take = Effect.zipRight(
      slots.take(1),
      Effect.suspend(() => {
        held += 1
        if (held < crowdedAt || crowded === undefined) return Effect.void
        const lingering = crowded
        crowded = undefined
        return Deferred.succeed(lingering, undefined)
      })
    )

    const release = (count: number) =>
      Effect.suspend(() => {
        held -= count
        return slots.release(count)
      })

    const lingerUnlessCrowded = (duration: Duration.DurationInput) =>
      Effect.suspend(() => {
        if (held >= crowdedAt) return Effect.void
        return Effect.flatMap(Deferred.make<void>(), (signal) => {
          crowded = signal
          return Effect.raceFirst(Effect.sleep(duration), Deferred.await(signal)).pipe(
            Effect.ensuring(Effect.sync(() => {
              if (crowded === signal) crowded = undefined
            }))
          )
        })
      })

    return { take, release, drain: slots.take(size), lingerUnlessCrowded }
  })
