/**
 * Identifiers. Every id the service accepts is a positive safe integer
 * (1 to 2^53 − 1): JSON numbers in bodies, decimal digits in paths.
 */
import * as Schema from "effect/Schema"

/** A positive integer that a JavaScript number represents exactly. */
export const PositiveSafeInt = Schema.Int.pipe(
  Schema.greaterThanOrEqualTo(1),
  Schema.lessThanOrEqualTo(Number.MAX_SAFE_INTEGER)
).annotations({ identifier: "PositiveSafeInt", description: "an integer from 1 to 2^53 − 1" })

export const ProductId = PositiveSafeInt.pipe(Schema.brand("ProductId"))
export type ProductId = typeof ProductId.Type

export const UserId = PositiveSafeInt.pipe(Schema.brand("UserId"))
export type UserId = typeof UserId.Type

/** A round number: the product's `restock_round` after the restock that opened it. */
export const RestockRound = PositiveSafeInt.pipe(Schema.brand("RestockRound"))
export type RestockRound = typeof RestockRound.Type

/** `product_user_notification.id`: a subscriber's place in the subscription order. */
export const SubscriptionId = PositiveSafeInt.pipe(Schema.brand("SubscriptionId"))
export type SubscriptionId = typeof SubscriptionId.Type

/** `product_user_notification_history.id`: the SSE event id of a delivery. */
export const DeliveryId = PositiveSafeInt.pipe(Schema.brand("DeliveryId"))
export type DeliveryId = typeof DeliveryId.Type

/**
 * Decimal digits only (no sign, exponent, fraction or leading zero), so that
 * `1e3`, `+1`, `01` and `1.0` are rejected rather than read as another id.
 */
export const idFromPath = <S extends Schema.Schema<any, number, never>>(id: S) =>
  Schema.compose(
    Schema.String.pipe(Schema.pattern(/^[1-9][0-9]{0,15}$/, { message: () => "expected a positive integer id" })),
    Schema.compose(Schema.NumberFromString, id)
  )
