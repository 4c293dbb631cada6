/**
 * The SSE metrics counted where streams live, in-process over a real socket:
 * connections open, and a client that stops reading counted as dropped.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { Delivery } from "../../src/Domain/Delivery.js"
import { DeliveryId, ProductId, RestockRound, UserId } from "../../src/Domain/Ids.js"
import { DeliveryFeed } from "../../src/Feed/Feed.js"
import * as Metrics from "../../src/Observability/Metrics.js"
import { eventually, layerServer, openStalledStream, openStream, userToken } from "../support/Http.js"

const connections = Metric.value(Metrics.sseConnections).pipe(Effect.map((state) => state.value))
const dropped = Metric.value(Metrics.sseSlowClientsDropped).pipe(Effect.map((state) => state.count))
const liveEvents = Metric.value(Metric.tagged(Metrics.sseEventsDelivered, "kind", "live")).pipe(
  Effect.map((state) => state.count)
)

describe("SSE metrics", () => {
  it.live("count open streams, live events, and a client dropped for not reading", () =>
    Effect.gen(function*() {
      const droppedBefore = yield* dropped
      const liveBefore = yield* liveEvents
      const token = yield* userToken(1)
      const healthy = yield* openStream("/users/1/notifications/stream", { token })

      // A client that sends its request, then never reads.
      yield* openStalledStream("/users/1/notifications/stream", token)
      yield* eventually("both streams counted", connections, (open) => open === 2)

      // Far more than the kernel's buffers and the connection's 512 KiB hold.
      const feed = yield* DeliveryFeed
      const name = "x".repeat(32 * 1024)
      const total = 200
      yield* Effect.forEach(
        Array.from({ length: total }, (_, index) => index + 1),
        (id) =>
          feed.publish([
            new Delivery({
              id: DeliveryId.make(id),
              productId: ProductId.make(1),
              productName: name,
              userId: UserId.make(1),
              restockRound: RestockRound.make(id),
              sentAt: new Date()
            })
          ]).pipe(Effect.zipRight(Effect.sleep("5 millis"))),
        { discard: true }
      )
      yield* eventually("the stalled client dropped", dropped, (count) => count === droppedBefore + 1, "20 seconds")
      yield* eventually("one stream left", connections, (open) => open === 1, "20 seconds")

      yield* healthy.take(total, "20 seconds")
      expect((yield* liveEvents) - liveBefore).toBeGreaterThanOrEqual(total)
    }).pipe(Effect.scoped, Effect.provide(layerServer({ sse: { bufferBytes: 512 * 1024 } }))), 60_000)
})
