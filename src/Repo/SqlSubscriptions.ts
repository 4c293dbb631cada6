/**
 * The subscriptions part of the SQL `Repo` adapter: subscribing (again),
 * unsubscribing, a subscription's id for the unsubscribe link, and the
 * stream of a round's pending subscribers, read a page at a time.
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { SubscriptionId } from "../Domain/Ids.js"
import { type Subscriber, Subscription } from "../Domain/Subscription.js"
import type { RepoShape } from "./Repo.js"
import { decodeFirst, decodeSubscriberRows, SubscriptionRow } from "./Rows.js"
import { currentTime, limitOf, orUnavailable, type SqlContext } from "./SqlShared.js"

const decodeSubscription = decodeFirst(SubscriptionRow)
const decodeSubscriptionId = decodeFirst(Schema.Struct({ id: SubscriptionId }))

export const makeSubscriptions = (
  { dialect, queries, reads, sql }: SqlContext
): Pick<RepoShape, "subscribe" | "unsubscribe" | "subscriptionIdOf" | "pendingSubscribers"> => {
  const at = dialect.timestamp

  const subscribe: RepoShape["subscribe"] = (productId, userId) =>
    Effect.gen(function*() {
      yield* reads.requireProduct(productId)
      const now = at(yield* currentTime)
      yield* dialect.insertOrUpdate(
        "product_user_notification",
        sql.insert({ product_id: productId, user_id: userId, is_active: 1, created_at: now, updated_at: now }),
        ["product_id", "user_id"],
        [
          // Before `is_active`: MySQL evaluates assignments left to right on the
          // updated row, SQLite on the old one; this order reads the old value on both.
          sql`updated_at = CASE WHEN is_active = 1 THEN updated_at ELSE ${now} END`,
          sql`is_active = 1`
        ]
      )
      const rows = yield* sql`SELECT product_id AS productId, user_id AS userId, is_active AS active, created_at AS subscribedAt
        FROM product_user_notification WHERE product_id = ${productId} AND user_id = ${userId}`
      const row = yield* decodeSubscription(rows).pipe(
        Effect.flatMap(Option.match({
          onNone: () => Effect.dieMessage(`the subscription of user ${userId} to product ${productId} vanished`),
          onSome: Effect.succeed
        }))
      )
      return new Subscription(row, { disableValidation: true })
    }).pipe(orUnavailable("subscribe"))

  const unsubscribe: RepoShape["unsubscribe"] = (productId, userId) =>
    Effect.gen(function*() {
      yield* reads.requireProduct(productId)
      const now = at(yield* currentTime)
      yield* sql`UPDATE product_user_notification SET is_active = 0, updated_at = ${now}
        WHERE product_id = ${productId} AND user_id = ${userId} AND is_active = 1`
    }).pipe(orUnavailable("unsubscribe"))

  const subscriptionIdOf: RepoShape["subscriptionIdOf"] = (productId, userId) =>
    sql`SELECT id FROM product_user_notification WHERE product_id = ${productId} AND user_id = ${userId}`.pipe(
      Effect.flatMap(decodeSubscriptionId),
      Effect.map(Option.map((row) => row.id)),
      orUnavailable("subscriptionIdOf")
    )

  const pendingSubscribers: RepoShape["pendingSubscribers"] = (productId, { after, pageSize, restockRound }) => {
    const size = limitOf(pageSize)
    const page = (afterId: number) =>
      queries.pendingSubscribers(productId, restockRound, afterId, size).pipe(
        Effect.flatMap(decodeSubscriberRows),
        orUnavailable("pendingSubscribers")
      )
    // The next page is read only when the consumer pulls past this one.
    return Stream.paginateChunkEffect(after ?? 0, (afterId: number) =>
      Effect.map(page(afterId), (rows) =>
        [
          Chunk.unsafeFromArray<Subscriber>(rows),
          rows.length < size ? Option.none() : Option.some<number>(rows[rows.length - 1]!.subscriptionId)
        ] as const))
  }

  return { subscribe, unsubscribe, subscriptionIdOf, pendingSubscribers }
}
