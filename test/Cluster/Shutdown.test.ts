/**
 * SIGTERM to a real service process mid-round (SPEC §3.8): it exits 0 within
 * a few seconds, its SSE streams end, the round is left `CANCELED_BY_ERROR`
 * "shutdown" with every send that reached the sender recorded, and a resume
 * on a new process sends the rest, nobody twice.
 */
import { expect, layer } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { countsByUser, webhooksOf } from "../support/Deliveries.js"
import * as TestSender from "../support/Sender.js"
import {
  adminToken,
  awaitTerminal,
  Backing,
  expectStatus,
  historyOf,
  layerBacking,
  type RoundJson,
  seedProduct,
  start,
  trigger
} from "../support/Service.js"

const subscribers = 2_000

layer(layerBacking, { excludeTestServices: true, timeout: "3 minutes" })("SIGTERM", (it) => {
  it.scoped("mid-round: exit 0 within seconds, streams closed, round left resumable as \"shutdown\", resumed with nobody twice", () =>
    Effect.gen(function*() {
      const backing = yield* Backing
      const sender = yield* TestSender.start({ latency: { minMs: 10, maxMs: 30 } })
      const options = { ...backing, webhookUrl: sender.url, rateLimitPerSecond: 500 }
      const first = yield* start({ name: "first", ...options })
      yield* seedProduct(first, 1, { stock: 1_000_000, subscribers })
      const userToken = expectStatus(first, "minting", yield* first.request("POST", "/admin/users/1/token"), 200).body.token
      const userStream = yield* first.stream("/users/1/notifications/stream", { token: userToken })
      const progress = yield* first.stream("/admin/products/1/notifications/stream", { token: adminToken })
      expect([userStream.status, progress.status]).toEqual([200, 200])

      const round = yield* trigger(first, 1)
      // Let a few hundred sends go, then stop the process.
      yield* sender.awaitArrivals(300)
      const stoppedAt = Date.now()
      const exited = yield* first.kill("SIGTERM")
      const tookMs = Date.now() - stoppedAt
      expect(exited).toEqual({ code: 0, signal: null })
      expect(tookMs, `SIGTERM to exit: ${tookMs} ms`).toBeLessThan(5_000)
      // Both streams were ended by the server: already over when the process is gone.
      for (const stream of [userStream, progress]) {
        expect(yield* Deferred.poll(stream.ended).pipe(Effect.map((done) => done._tag))).toBe("Some")
      }

      const second = yield* start({ name: "second", ...options })
      const stopped = expectStatus(second, "reading the round", yield* second.request("GET", `/products/1/notifications/${round.restockRound}`), 200)
        .body as RoundJson
      expect(stopped.status).toBe("CANCELED_BY_ERROR")
      expect(stopped.error).toBe("shutdown")
      // Every send answered before the exit is recorded, and nothing more.
      const answered = webhooksOf(sender, 1, round.restockRound).filter((w) => w.status !== undefined && w.status < 300)
      const recorded = yield* historyOf(1, round.restockRound)
      expect(recorded.length).toBe(stopped.sentCount)
      expect(new Set(recorded.map((row) => row.userId))).toEqual(new Set(answered.map((w) => w.userId)))
      expect(stopped.sentCount).toBeGreaterThanOrEqual(300)
      expect(stopped.sentCount).toBeLessThan(subscribers)

      const resumed = yield* second.request("POST", "/admin/products/1/notifications/re-stock")
      expectStatus(second, "resuming", resumed, 202)
      const finished = yield* awaitTerminal(second, 1, round.restockRound, "60 seconds")
      expect(finished.status).toBe("COMPLETED")
      expect(finished.sentCount).toBe(subscribers)
      const all = webhooksOf(sender, 1, round.restockRound)
      const counts = countsByUser(all)
      expect(counts.size).toBe(subscribers)
      expect([...counts.values()].every((n) => n === 1), "a user reached the sender twice across the shutdown").toBe(true)
      expect((yield* historyOf(1, round.restockRound)).length).toBe(subscribers)
    }))
})
