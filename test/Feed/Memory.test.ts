import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { UserId } from "../../src/Domain/Ids.js"
import * as FeedMemory from "../../src/Feed/Memory.js"
import { deliveryFeedContract } from "../contracts/DeliveryFeed.contract.js"

deliveryFeedContract("in memory", {
  makeFeeds: (processes) => Effect.map(FeedMemory.make, (feed) => Array.from({ length: processes }, () => feed))
})

describe("in-memory DeliveryFeed", () => {
  it.effect("closing a listener's scope removes it from the hub", () =>
    Effect.gen(function*() {
      const feed = yield* FeedMemory.make
      const scope = yield* Scope.make()
      yield* feed.subscribe(UserId.make(1), { bufferSize: 5 }).pipe(Scope.extend(scope))
      yield* feed.subscribe(UserId.make(1), { bufferSize: 5 }).pipe(Scope.extend(scope))
      expect(feed.hub.listenerCount()).toBe(2)

      yield* Scope.close(scope, Exit.void)
      expect(feed.hub.listenerCount()).toBe(0)
    }))
})
