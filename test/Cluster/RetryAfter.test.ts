/**
 * `Retry-After` end to end (SPEC §5): a real service process sending through
 * its webhook notifier to a real sender that answers 429 and 503 with
 * `Retry-After`, in seconds and as a date. Each retry arrives no sooner than
 * the answer said, the round completes with everyone once, and every request
 * that reached the sender, retries included, kept to the limit.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { checkLimit, countsByUser, webhooksOf } from "../support/Deliveries.js"
import * as TestSender from "../support/Sender.js"
import { awaitTerminal, Backing, layerBacking, seedProduct, start, trigger } from "../support/Service.js"

const subscribers = 600
const limit = 500

layer(layerBacking, { excludeTestServices: true, timeout: "3 minutes" })("Retry-After through a real process", (it) => {
  it.scoped("429 and 503 with Retry-After in seconds or as a date: each retry waits as told, nobody missed or doubled", () =>
    Effect.gen(function*() {
      const backing = yield* Backing
      // User 100: 429 "1" once; user 300: 503 with a date 2 s ahead, once.
      const answered = new Set<number>()
      const once = (userId: number, reply: () => TestSender.Reply): TestSender.Script => (arrival) => {
        if (arrival.userId !== userId || answered.has(userId)) return undefined
        answered.add(userId)
        return reply()
      }
      const sender = yield* TestSender.start({
        latency: { minMs: 5, maxMs: 15 },
        script: TestSender.firstOf(
          once(100, () => ({ status: 429, headers: { "retry-after": "1" } })),
          once(300, () => ({ status: 503, headers: { "retry-after": new Date(Date.now() + 2_000).toUTCString() } }))
        )
      })
      const service = yield* start({ name: "service", ...backing, webhookUrl: sender.url, rateLimitPerSecond: limit })
      yield* seedProduct(service, 1, { stock: 1_000_000, subscribers })
      const round = yield* trigger(service, 1)
      const finished = yield* awaitTerminal(service, 1, round.restockRound, "60 seconds")
      expect(finished.status).toBe("COMPLETED")
      expect(finished.sentCount).toBe(subscribers)

      const webhooks = webhooksOf(sender, 1, round.restockRound)
      const counts = countsByUser(webhooks)
      expect(counts.size).toBe(subscribers)
      expect(counts.get(100)).toBe(2)
      expect(counts.get(300)).toBe(2)
      expect(webhooks.length).toBe(subscribers + 2)

      const arrivalsOf = (userId: number) => sender.arrivals().filter((a) => a.userId === userId).map((a) => a.at)
      const [first100, retry100] = arrivalsOf(100)
      const [first300, retry300] = arrivalsOf(300)
      // No sooner than told: one second; an HTTP date has whole seconds, so at least 1 s of the 2.
      expect(retry100! - first100!).toBeGreaterThanOrEqual(1_000)
      expect(retry300! - first300!).toBeGreaterThanOrEqual(1_000)
      // ... and not much later: the round went on meanwhile, and the retry took the next free slot.
      expect(retry100! - first100!).toBeLessThan(3_000)
      expect(retry300! - first300!).toBeLessThan(4_000)

      // The retries counted against the limit like every other request.
      expect(checkLimit(webhooks, limit).startsWorst).toBeLessThanOrEqual(limit)
    }))
})
