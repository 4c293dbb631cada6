import * as Schema from "effect/Schema"
import { DeliveryId, ProductId, RestockRound, UserId } from "./Ids.js"

/**
 * One notification, as the sender receives it (the webhook body) and as an SSE
 * listener receives it (without `userId`).
 */
export class Notification extends Schema.Class<Notification>("Notification")({
  userId: UserId,
  productId: ProductId,
  productName: Schema.String,
  restockRound: RestockRound,
  sentAt: Schema.Date,
  /** The one-click link that unsubscribes this user from this product (SPEC §3.13). */
  unsubscribeUrl: Schema.String
}) {
  /** `<productId>:<restockRound>:<userId>`: lets the sender drop a repeat after a crash. */
  get idempotencyKey(): string {
    return `${this.productId}:${this.restockRound}:${this.userId}`
  }
}

/** A delivery to record: one `product_user_notification_history` row to be. */
export interface DeliveryRecord {
  readonly userId: UserId
  readonly sentAt: Date
}

/** A recorded delivery: a `product_user_notification_history` row. */
export class Delivery extends Schema.Class<Delivery>("Delivery")({
  id: DeliveryId,
  productId: ProductId,
  productName: Schema.String,
  userId: UserId,
  restockRound: RestockRound,
  sentAt: Schema.Date
}) {}

/** A page of a round's recipients, `GET .../recipients`. */
export class Recipient extends Schema.Class<Recipient>("Recipient")({
  userId: UserId,
  sentAt: Schema.Date
}) {}
