/**
 * Keeps a dispatcher's claim on a round while its process lives: the lease
 * is renewed every third of its duration, from a fiber in the round's scope
 * (so it stops with the round). A lease found lost (another dispatcher took
 * the round over) calls `onLost`, which halts the round; a database that is
 * away is retried at the next beat, and every write of the round is fenced
 * by the lease meanwhile.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import type { ProductId, RestockRound } from "../Domain/Ids.js"
import type { RepoShape } from "../Repo/Repo.js"

export interface LeaseHeartbeatOptions {
  readonly repo: RepoShape
  readonly productId: ProductId
  readonly restockRound: RestockRound
  readonly owner: string
  readonly leaseDuration: Duration.Duration
  readonly onLost: Effect.Effect<unknown>
}

export const keepLease = (options: LeaseHeartbeatOptions): Effect.Effect<void, never, Scope.Scope> => {
  const beat = Duration.times(options.leaseDuration, 1 / 3)
  return Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    yield* options.repo.renewLease(options.productId, options.restockRound, {
      owner: options.owner,
      expiresAt: new Date(now + Duration.toMillis(options.leaseDuration))
    })
  }).pipe(
    Effect.catchTags({
      LeaseLost: () => options.onLost,
      StorageUnavailable: () => Effect.void
    }),
    Effect.repeat(Schedule.spaced(beat)),
    Effect.delay(beat),
    Effect.forkScoped,
    Effect.asVoid
  )
}
