/**
 * A round waiting for its send window (SPEC §3.12): it records that it
 * waits (`waiting_until`, told to the progress listeners), waits through
 * `Clock` until the window opens or the round is halted, and records that it
 * goes on. The lease heartbeat and the sold-out watch keep running
 * meanwhile; sends in flight settle and are recorded as they would be anyway.
 */
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type { ProductId, RestockRound } from "../Domain/Ids.js"
import type { Round } from "../Domain/Round.js"
import type { RepoShape } from "../Repo/Repo.js"
import type { Durably } from "./Durably.js"
import { Halt } from "./Halt.js"
import * as SendWindow from "./SendWindow.js"

export interface WindowWaitOptions {
  readonly repo: RepoShape
  readonly durably: Durably
  readonly productId: ProductId
  readonly restockRound: RestockRound
  readonly owner: string
  readonly halt: Deferred.Deferred<Halt>
  readonly onProgress: (round: Round) => Effect.Effect<void>
}

export interface WindowWait {
  /** When the window closes next (never without one): the start loop compares the clock with it per send. */
  readonly closesAt: () => number
  /** Waits for the window to open again; answers whether the round may go on. */
  readonly untilOpen: (now: number) => Effect.Effect<boolean>
}

export const make = (window: SendWindow.SendWindow | null, options: WindowWaitOptions): Effect.Effect<WindowWait> =>
  Effect.map(Clock.currentTimeMillis, (startedAt) => {
    const { durably, halt, onProgress, owner, productId, repo, restockRound } = options
    let closesAt = window === null ? Number.POSITIVE_INFINITY : SendWindow.nextClosing(window, startedAt)

    /** Writes `waiting_until` and tells the progress listeners; `false` if the round cannot go on. */
    const markWaiting = (waitingUntil: Date | null, now: number): Effect.Effect<boolean> =>
      durably(repo.setWaitingUntil(productId, restockRound, owner, waitingUntil, new Date(now))).pipe(
        Effect.flatMap((changed) => Effect.as(onProgress(changed), true)),
        Effect.catchTags({
          LeaseLost: () => Effect.as(Deferred.succeed(halt, Halt.LeaseLost()), false),
          // `durably` has halted the round already: it stops as for a record it could not write.
          StorageUnavailable: () => Effect.succeed(false)
        })
      )

    const untilOpen = (now: number): Effect.Effect<boolean> =>
      Effect.gen(function*() {
        if (window === null) return true
        const opensAt = SendWindow.nextOpening(window, now)
        yield* Effect.logInfo(`send window ${window.description} closed: waiting until ${new Date(opensAt).toISOString()}`)
        if (!(yield* markWaiting(new Date(opensAt), now))) return false
        yield* Effect.raceFirst(Effect.sleep(Math.max(0, opensAt - now)), Deferred.await(halt))
        if (yield* Deferred.isDone(halt)) return false
        const openedAt = yield* Clock.currentTimeMillis
        closesAt = SendWindow.nextClosing(window, openedAt)
        return yield* markWaiting(null, openedAt)
      })

    return { closesAt: () => closesAt, untilOpen }
  })
