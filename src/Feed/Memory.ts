/**
 * The in-process `DeliveryFeed`: deliveries routed to the listeners of their
 * user in this process, through the hub (`Hub.ts`) that the Redis feed runs
 * on every process too.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { DeliveryFeed, type DeliveryFeedShape } from "./Feed.js"
import { type LocalHub, makeHub } from "./Hub.js"

// Part of the library's surface as `FeedMemory.makeHub` (index.ts): kept here too.
export { type LocalHub, makeHub } from "./Hub.js"

/** The feed of this process alone, and its hub (for metrics). */
export const make: Effect.Effect<DeliveryFeedShape & { readonly hub: LocalHub }> = Effect.sync(() => {
  const hub = makeHub()
  return {
    hub,
    publish: (deliveries) => Effect.sync(() => hub.publish(deliveries)),
    listen: hub.listen,
    subscribe: hub.subscribe
  }
})

export const layer: Layer.Layer<DeliveryFeed> = Layer.effect(DeliveryFeed, make)
