import { Schema } from "effect"
import { ProductId, SubscriptionId, UserId } from "./Ids.js"

/** `PUT /products/{productId}/subscriptions/{userId}` answers this. */
export class Subscription extends Schema.Class<Subscription>("Subscription")({
  productId: ProductId,
  userId: UserId,
  active: Schema.Boolean,
  subscribedAt: Schema.Date
}) {}

/** An active subscriber at its place in the subscription order. */
export interface Subscriber {
  readonly subscriptionId: SubscriptionId
  readonly userId: UserId
}
