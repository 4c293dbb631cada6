/**
 * A dispatching process killed mid-round (SIGKILL: no shutdown, no last
 * write) leaves its round `IN_PROGRESS` under a lease that nobody renews
 * (SPEC §3.7). Until the lease lapses the round still counts as being sent;
 * after it, an operator resumes it on any instance, and then nobody is
 * missed, no user gets a second record, and only the sends that were in
 * flight or not yet recorded at the kill reach the sender twice.
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { countsByUser, range, repeats, webhooksOf } from "../support/Deliveries.js"
import * as TestSender from "../support/Sender.js"
import {
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

/** Short, so the test need not wait the default 10 s for the lease to lapse. */
const leaseSeconds = 3
/** SPEC §3.7: a SIGKILL at the default limit repeats no more than this. */
const maxRepeats = 25

const log = (line: string) => Effect.sync(() => console.log(`[crash recovery] ${line}`))

/** The lease of the product's `IN_PROGRESS` round, straight from the table. */
const leaseExpiry = (productId: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ expiresAt: Date | null }>`
      SELECT lease_expires_at AS expiresAt FROM product_notification_history
      WHERE product_id = ${productId} AND status = 'IN_PROGRESS'`
    const expiresAt = rows[0]?.expiresAt
    // DATETIME(3) in UTC; the client reads it as UTC (`timezone: "Z"`).
    return expiresAt == null ? null : expiresAt.getTime()
  }).pipe(Effect.orDie)

layer(layerBacking, { excludeTestServices: true, timeout: "3 minutes" })("a dispatcher killed mid-round", (it) => {
  it.scoped("SIGKILL after a few hundred sends, restart, resume once the lease lapsed: everyone notified, few repeats, one record each", () =>
    Effect.gen(function*() {
      const backing = yield* Backing
      const sender = yield* TestSender.start({ latency: { minMs: 10, maxMs: 30 } })
      const options = { ...backing, webhookUrl: sender.url, leaseSeconds }
      const [dispatcher, other] = yield* Effect.all([
        start({ name: "instance A", ...options }),
        start({ name: "instance B", ...options })
      ], { concurrency: "unbounded" })
      const productId = 301
      const subscribers = 2_000
      yield* seedProduct(dispatcher, productId, { stock: 10, subscribers })

      const opened = yield* trigger(dispatcher, productId)
      yield* sender.awaitArrivals(400).pipe(Effect.timeout("20 seconds"), Effect.orDie)
      yield* dispatcher.kill("SIGKILL")
      const killedAt = Date.now()
      const lapsesAt = yield* leaseExpiry(productId)

      // Until the lease lapses the round is still being sent, as far as anyone can tell.
      expect(lapsesAt).not.toBeNull()
      const tooEarly = yield* other.request("POST", `/admin/products/${productId}/notifications/re-stock`)
      const askedAt = Date.now()
      expect(askedAt).toBeLessThan(lapsesAt!) // else this check proves nothing: the lease was not renewed
      expect(tooEarly.status).toBe(409)
      expect(tooEarly.body).toMatchObject({ _tag: "NothingToResume" })
      const atKill = yield* other.request("GET", `/products/${productId}/notifications/${opened.restockRound}`)
      expect(atKill.body).toMatchObject({ status: "IN_PROGRESS" })
      // What the dead process had sent (requests already on the wire are read by now) and recorded.
      yield* Effect.sleep("200 millis")
      const beforeKill = webhooksOf(sender, productId, opened.restockRound)
      const recordedAtKill = (yield* historyOf(productId, opened.restockRound)).length

      // The process comes back (a supervisor restarts it); the operator resumes there, retrying until the lease lapsed.
      const restarted = yield* start({ name: "instance A (restarted)", ...options })
      let resumed: RoundJson | undefined
      let resumedAt = 0
      while (resumed === undefined) {
        const reply = yield* restarted.request("POST", `/admin/products/${productId}/notifications/re-stock`)
        resumedAt = Date.now()
        if (reply.status === 202) resumed = reply.body as RoundJson
        else {
          expect(reply.body).toMatchObject({ _tag: "NothingToResume" })
          expect(resumedAt).toBeLessThan(lapsesAt! + 5_000)
          yield* Effect.sleep("100 millis")
        }
      }
      expect(resumed).toMatchObject({ restockRound: opened.restockRound, status: "IN_PROGRESS" })
      // Never resumable while the dead dispatcher's lease still held.
      expect(resumedAt).toBeGreaterThanOrEqual(lapsesAt!)
      const done = yield* awaitTerminal(restarted, productId, opened.restockRound)

      const all = webhooksOf(sender, productId, opened.restockRound)
      const repeated = repeats(all)
      yield* log(`killed after ${beforeKill.length} arrivals (${recordedAtKill} recorded); lease lapsed ` +
        `${lapsesAt! - killedAt} ms after the kill (LEASE_SECONDS=${leaseSeconds}); resumed ${resumedAt - killedAt} ms ` +
        `after the kill; ${repeated} sends repeated`)

      expect(done).toMatchObject({ status: "COMPLETED", sentCount: subscribers, lastSentUserId: subscribers })
      // Everyone received it (by Idempotency-Key at the sender) ...
      expect([...countsByUser(all).keys()].sort((a, b) => a - b)).toEqual(range(1, subscribers))
      // ... and only what was in flight or unrecorded at the kill came twice.
      expect(repeated).toBeLessThanOrEqual(maxRepeats)
      expect(repeated).toBeLessThanOrEqual(beforeKill.length - recordedAtKill)
      // One delivery record per user.
      const history = (yield* historyOf(productId, opened.restockRound)).map((row) => row.userId)
      expect(history.sort((a, b) => a - b)).toEqual(range(1, subscribers))
      // The lease lapses within LEASE_SECONDS of the last heartbeat, i.e. of the kill.
      expect(lapsesAt! - killedAt).toBeLessThanOrEqual(leaseSeconds * 1_000)
      expectStatus(restarted, "readiness", yield* restarted.request("GET", "/health/ready", { token: null }), 200)
    }))
})
