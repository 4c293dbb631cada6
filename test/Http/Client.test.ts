/**
 * The typed client (`RestockClient`) against the real server on a real
 * socket: another Effect program creates a product, subscribes users,
 * triggers a round and follows its progress to the end, and meets the API's
 * errors as typed failures.
 */
import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { ProductId, UserId } from "../../src/Domain/Ids.js"
import * as RestockClient from "../../src/Http/Client.js"
import * as Recording from "../../src/Notifier/Recording.js"
import { adminToken, layerServer, TestServer } from "../support/Http.js"

const client = (token: string = adminToken) =>
  Effect.flatMap(TestServer, (server) => RestockClient.make({ baseUrl: server.baseUrl, token }))

const subscribers = 30
// 30 sends at 20/s: about a second and a half, long enough for several progress events.
const server = layerServer({ limitPerSecond: 20 })

describe("RestockClient", () => {
  it.live("triggers a round and follows its progress, from the first send to COMPLETED, in the stream's order", () =>
    Effect.gen(function*() {
      const restock = yield* client()
      const productId = ProductId.make(1)
      const product = yield* restock.products.upsertProduct({ path: { productId }, payload: { name: "Blue kettle", stock: 0 } })
      expect(product).toMatchObject({ id: 1, name: "Blue kettle", stock: 0, stockStatus: "OUT_OF_STOCK" })
      for (let user = 1; user <= subscribers; user++) {
        yield* restock.subscriptions.subscribe({ path: { productId, userId: UserId.make(user) } })
      }

      // Listening first: the stream's first event is the latest round, none yet.
      const progress = yield* restock.progress(productId).pipe(Stream.runCollect, Effect.fork)
      const opened = yield* restock.rounds.restock({ path: { productId }, payload: { stock: 100 } })
      expect(opened.status).toBe("IN_PROGRESS")
      expect(opened.restockRound).toBe(1)
      expect(opened.startedAt).toBeInstanceOf(Date)

      const rounds = Chunk.toReadonlyArray(yield* progress)
      const [first, ...rest] = rounds
      // The stream may open before or after the round does: either nothing yet, or the round.
      expect(first === null || first.restockRound === 1).toBe(true)
      const last = rest.at(-1)!
      expect(last).toMatchObject({ restockRound: 1, status: "COMPLETED", sentCount: subscribers, lastSentUserId: subscribers })
      // Decoded as the server's schema says: dates are Dates.
      expect(last.finishedAt).toBeInstanceOf(Date)
      const counts = rest.map((round) => round!.sentCount)
      expect(counts).toEqual([...counts].sort((a, b) => a - b))
      expect(counts.some((count) => count > 0 && count < subscribers), `progress seen mid-round: ${counts}`).toBe(true)

      const recorded = yield* Recording.Recording.pipe(Effect.flatMap((recording) => recording.delivered))
      expect(recorded.map((n) => n.userId)).toEqual(Array.from({ length: subscribers }, (_, i) => i + 1))
      const history = yield* restock.rounds.listRounds({ path: { productId } })
      expect(history.map((round) => [round.restockRound, round.status])).toEqual([[1, "COMPLETED"]])
      const recipients = yield* restock.rounds.recipients({ path: { productId, restockRound: last.restockRound }, urlParams: { limit: 5 } })
      expect(recipients.items.map((item) => item.userId)).toEqual([1, 2, 3, 4, 5])
    }).pipe(Effect.provide(FetchHttpClient.layer), Effect.provide(server)))

  it.live("answers the API's refusals as typed errors: an unknown product, a round in progress, a wrong token", () =>
    Effect.gen(function*() {
      const restock = yield* client()
      const unknown = yield* restock.rounds.restock({ path: { productId: ProductId.make(404) }, payload: null }).pipe(Effect.flip)
      expect(unknown._tag).toBe("ProductNotFound")

      const productId = ProductId.make(2)
      yield* restock.products.upsertProduct({ path: { productId }, payload: { name: "Red scarf", stock: 10 } })
      for (let user = 1; user <= 20; user++) yield* restock.subscriptions.subscribe({ path: { productId, userId: UserId.make(user) } })
      yield* restock.rounds.restock({ path: { productId }, payload: null })
      const again = yield* restock.rounds.restock({ path: { productId }, payload: null }).pipe(Effect.flip)
      expect(again._tag).toBe("RoundInProgress")
      const done = yield* restock.progress(productId).pipe(Stream.runLast)
      expect(done._tag === "Some" && done.value?.status).toBe("COMPLETED")

      const stranger = yield* client("not-the-admin-token")
      const refused = yield* stranger.rounds.listRounds({ path: { productId } }).pipe(Effect.flip)
      expect(refused._tag).toBe("Unauthorized")
    }).pipe(Effect.provide(FetchHttpClient.layer), Effect.provide(server)))
})
