/**
 * The `DeliveryFeed` across processes: each published batch goes out as one
 * JSON message on the channel `<prefix>deliveries`, and every process
 * subscribes to it once and routes what arrives to its own listeners (the
 * in-process hub), so a listener on any process sees deliveries sent from
 * any process, in the order they were published.
 *
 * Redis pub/sub keeps nothing for a subscriber that is away: while the
 * subscriber connection is down, live streams are ended (their clients
 * reconnect and replay the gap from the database by `Last-Event-ID`) and new
 * ones are refused with `StorageUnavailable` until the channel is subscribed
 * again.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import { Delivery } from "../Domain/Delivery.js"
import { StorageUnavailable } from "../Domain/Errors.js"
import { RedisConnection } from "../Redis.js"
import { DeliveryFeed, type DeliveryFeedShape } from "./Feed.js"
import { makeHub, subscribeVia } from "./Hub.js"

/** The message on `<prefix>deliveries`: a JSON array of encoded `Delivery`. */
export const DeliveryBatchJson = Schema.parseJson(Schema.Array(Delivery))

export const channelOf = (keyPrefix: string): string => `${keyPrefix}deliveries`

/**
 * `DeliveryBatchJson`'s encoding, written out: a batch is published after
 * every record write, and the schema's encoder allocated more per delivery
 * than the rest of the publish. The feed's test holds the two to the same text.
 */
export const encodeBatch = (deliveries: ReadonlyArray<Delivery>): string =>
  JSON.stringify(deliveries.map((delivery) => ({
    id: delivery.id,
    productId: delivery.productId,
    productName: delivery.productName,
    userId: delivery.userId,
    restockRound: delivery.restockRound,
    sentAt: delivery.sentAt.toISOString()
  })))

/** The elements of a JSON array whose `userId` passes `wanted`; `undefined` if `message` is no JSON array. */
const entriesFor = (message: string, wanted: (userId: number) => boolean): Array<unknown> | undefined => {
  let parsed: unknown
  try {
    parsed = JSON.parse(message)
  } catch {
    return undefined
  }
  if (!Array.isArray(parsed)) return undefined
  return parsed.filter((entry) => typeof entry?.userId === "number" && wanted(entry.userId))
}

export const make = Effect.gen(function*() {
  const redis = yield* RedisConnection
  const channel = channelOf(redis.keyPrefix)
  const hub = makeHub()
  const decode = Schema.decodeUnknownEither(Schema.Array(Delivery))
  const runFork = Runtime.runFork(yield* Effect.runtime<never>())
  const ignore = (why: string) => runFork(Effect.logWarning(`ignored a malformed message on ${channel}`, why))

  const subscription = yield* redis.subscribe(channel, {
    // Every process hears every batch: only the deliveries of users listening here are
    // decoded (a round of thousands with a few listeners would otherwise decode them all).
    onMessage: (message) => {
      const wanted = entriesFor(message, hub.listensTo)
      if (wanted === undefined) return ignore("not a JSON array")
      if (wanted.length === 0) return
      Either.match(decode(wanted), { onRight: hub.publish, onLeft: (error) => ignore(error.message) })
    },
    onLost: () => hub.end()
  })

  const publish: DeliveryFeedShape["publish"] = (deliveries) =>
    deliveries.length === 0 ? Effect.void : redis.use("PUBLISH", (client) => client.publish(channel, encodeBatch(deliveries))).pipe(
      Effect.asVoid,
      // The records are committed: the users' listeners here may have missed
      // these, so end their streams and let them replay from the database.
      Effect.catchAll((error) =>
        Effect.zipRight(
          Effect.logWarning("live deliveries not published; listeners of this process will replay them", error.message),
          Effect.sync(() => hub.end(deliveries.map((delivery) => delivery.userId)))
        )
      )
    )

  const listen: DeliveryFeedShape["listen"] = (userId, listener) =>
    Effect.flatMap(subscription.isLive, (live) =>
      live
        ? hub.listen(userId, listener)
        : Effect.fail(new StorageUnavailable({ message: `Redis pub/sub on ${channel} is reconnecting` })))

  return { publish, listen, subscribe: subscribeVia(listen), hub } satisfies DeliveryFeedShape & { readonly hub: unknown }
})

export const layer: Layer.Layer<DeliveryFeed, StorageUnavailable, RedisConnection> = Layer.scoped(DeliveryFeed, make)
