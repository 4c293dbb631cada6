/**
 * The `Restock` service: what the HTTP edge and other Effect programs call to
 * run restock rounds (SPEC §3).
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import type {
  NothingToResume,
  ProductNotFound,
  RoundInProgress,
  RoundNotFound,
  StorageUnavailable
} from "../Domain/Errors.js"
import type { ProductId, RestockRound } from "../Domain/Ids.js"
import type { Round } from "../Domain/Round.js"

export interface RestockShape {
  /**
   * Sets the stock first when given, increments the product's round, opens it
   * `IN_PROGRESS` and starts its dispatch in the background.
   */
  readonly trigger: (
    productId: ProductId,
    options?: { readonly stock?: number | undefined }
  ) => Effect.Effect<Round, ProductNotFound | RoundInProgress | StorageUnavailable>
  /**
   * Resumes the latest round if it is `CANCELED_BY_ERROR`, or `IN_PROGRESS`
   * with a dispatcher that is gone (its lease lapsed): the same round, from the
   * first subscriber after `lastSentUserId` who has not received it.
   */
  readonly resume: (
    productId: ProductId
  ) => Effect.Effect<Round, ProductNotFound | NothingToResume | StorageUnavailable>
  /** Waits until the round reaches a terminal status and returns it. */
  readonly awaitRound: (
    productId: ProductId,
    restockRound: RestockRound
  ) => Effect.Effect<Round, RoundNotFound | StorageUnavailable>
  /**
   * The product's latest round (`null` if it has none), then a snapshot on
   * every change (at least every 250 ms while sending), ending after a
   * terminal status.
   */
  readonly progress: (
    productId: ProductId
  ) => Stream.Stream<Round | null, ProductNotFound | StorageUnavailable>
}

export class Restock extends Context.Tag("restock/Restock")<Restock, RestockShape>() {}
