import * as Schema from "effect/Schema"
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
  /**
   * Whether the user already has a record of the round being sent (a send
   * that succeeded after an earlier failure, before a resume): not sent
   * again, but part of the contiguous prefix once the users before it are.
   */
  readonly alreadyRecorded: boolean
}
