/**
 * The errors users of restock see, as a library and over HTTP. Each carries
 * its HTTP status, so the API serialises it as `{ _tag, message, ... }`.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Schema from "effect/Schema"
import { ProductId, RestockRound } from "./Ids.js"

export class ProductNotFound extends Schema.TaggedError<ProductNotFound>()(
  "ProductNotFound",
  { productId: ProductId, message: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {
  static of(productId: ProductId) {
    return new ProductNotFound({ productId, message: `product ${productId} does not exist` })
  }
}

export class RoundNotFound extends Schema.TaggedError<RoundNotFound>()(
  "RoundNotFound",
  { productId: ProductId, restockRound: RestockRound, message: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {
  static of(productId: ProductId, restockRound: RestockRound) {
    return new RoundNotFound({
      productId,
      restockRound,
      message: `product ${productId} has no restock round ${restockRound}`
    })
  }
}

/** A product has at most one `IN_PROGRESS` round (SPEC §3.7). */
export class RoundInProgress extends Schema.TaggedError<RoundInProgress>()(
  "RoundInProgress",
  { productId: ProductId, restockRound: Schema.optional(RestockRound), message: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {
  static of(productId: ProductId, restockRound?: RestockRound) {
    return new RoundInProgress({
      productId,
      restockRound,
      message: restockRound === undefined
        ? `product ${productId} already has a round in progress`
        : `product ${productId} already has round ${restockRound} in progress`
    })
  }
}

/** Only the latest round, `CANCELED_BY_ERROR` or abandoned by a dead dispatcher, can be resumed. */
export class NothingToResume extends Schema.TaggedError<NothingToResume>()(
  "NothingToResume",
  { productId: ProductId, message: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {
  static of(productId: ProductId, why: string) {
    return new NothingToResume({ productId, message: `product ${productId} has nothing to resume: ${why}` })
  }
}

/**
 * Some records of a round were deleted by the retention (SPEC §3.16): its
 * recipients can no longer be listed in full, and a partial list would read
 * as the whole. The round itself is kept.
 */
export class HistoryPruned extends Schema.TaggedError<HistoryPruned>()(
  "HistoryPruned",
  { productId: ProductId, restockRound: RestockRound, message: Schema.String },
  HttpApiSchema.annotations({ status: 410 })
) {
  static of(productId: ProductId, restockRound: RestockRound) {
    return new HistoryPruned({
      productId,
      restockRound,
      message: `the recipients of round ${restockRound} of product ${productId} were pruned (HISTORY_RETENTION)`
    })
  }
}

/**
 * What a `/unsubscribe/{token}` link carried is not an unsubscribe token this
 * service signed (SPEC §3.13): malformed, tampered with, signed with another
 * secret, or a token of another kind (a user JWT, the admin token).
 */
export class InvalidUnsubscribeToken extends Schema.TaggedError<InvalidUnsubscribeToken>()(
  "InvalidUnsubscribeToken",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 400, description: "Not an unsubscribe link of this service" })
) {
  static of() {
    return new InvalidUnsubscribeToken({ message: "this is not a valid unsubscribe link of this service" })
  }
}

/** The database or Redis could not be reached or answered with an error. */
export class StorageUnavailable extends Schema.TaggedError<StorageUnavailable>()(
  "StorageUnavailable",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 503 })
) {
  static fromCause(what: string, cause: unknown) {
    return new StorageUnavailable({ message: `${what}: ${describeCause(cause)}` })
  }
}

/** The round this dispatcher held was taken over (its lease lapsed): it must stop writing. */
export class LeaseLost extends Schema.TaggedError<LeaseLost>()(
  "LeaseLost",
  { productId: ProductId, restockRound: RestockRound, message: Schema.String },
  HttpApiSchema.annotations({ status: 409 })
) {}

export const describeCause = (cause: unknown): string => {
  if (cause instanceof Error) return cause.message || cause.name
  if (typeof cause === "object" && cause !== null && "message" in cause) return String(cause.message)
  return String(cause)
}
