/**
 * The unsubscribe link of a webhook body, as a real service process on
 * MariaDB and Redis sends it: with `PUBLIC_URL` unset it names
 * `http://<HOST>:<PORT>`, and it still works once that process is gone and
 * another one, with the same `JWT_SECRET`, serves in its place.
 */
import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { createServer } from "node:net"
import type { AddressInfo } from "node:net"
import * as TestSender from "../support/Sender.js"
import { awaitTerminal, Backing, layerBacking, seedProduct, start, trigger } from "../support/Service.js"

/** A port nothing listens on right now: bound, then released, for a service that must know its port up front. */
const freePort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

const activeUsers = (productId: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ readonly userId: number | string }>`
      SELECT user_id AS userId FROM product_user_notification
      WHERE product_id = ${productId} AND is_active = TRUE ORDER BY id`
  ).pipe(Effect.map((rows) => rows.map((row) => Number(row.userId))), Effect.orDie)

interface WebhookBody {
  readonly userId: number
  readonly productId: number
  readonly unsubscribeUrl: string
}

layer(layerBacking, { excludeTestServices: true, timeout: "3 minutes" })("a webhook body's unsubscribe link", (it) => {
  it.scoped("names PUBLIC_URL's default, and unsubscribes when followed, after a restart with the same secret", () =>
    Effect.gen(function*() {
      const backing = yield* Backing
      const sender = yield* TestSender.start()
      const port = yield* freePort
      const options = { ...backing, webhookUrl: sender.url, env: { PORT: String(port) } }
      const first = yield* start({ name: "first", ...options })
      yield* seedProduct(first, 1, { stock: 10, subscribers: 3 })
      const round = yield* trigger(first, 1)
      expect((yield* awaitTerminal(first, 1, round.restockRound)).status).toBe("COMPLETED")

      const bodies = sender.arrivals().map((arrival) => arrival.body as WebhookBody)
      expect(bodies.map((body) => body.userId)).toEqual([1, 2, 3])
      const link = bodies[1]!.unsubscribeUrl
      expect(link).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${port}/unsubscribe/[\\w-]+\\.[\\w-]+\\.[\\w-]+$`))
      expect(new Set(bodies.map((body) => body.unsubscribeUrl)).size).toBe(3)
      // Fetched by a mail scanner: a page, and nobody unsubscribed.
      const page = yield* Effect.promise(() => fetch(link))
      expect(page.status).toBe(200)
      expect(yield* Effect.promise(() => page.text())).toContain("Product 1")
      expect(yield* activeUsers(1)).toEqual([1, 2, 3])

      expect(yield* first.kill("SIGTERM")).toEqual({ code: 0, signal: null })
      const second = yield* start({ name: "second", ...options })
      const reply = yield* Effect.promise(() =>
        fetch(link, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: "List-Unsubscribe=One-Click"
        }))
      expect(reply.status).toBe(200)
      expect(yield* Effect.promise(() => reply.json())).toEqual({ productId: 1, userId: 2, active: false })
      expect(yield* activeUsers(1)).toEqual([1, 3])

      // The next round, from the new process, passes user 2 by.
      const next = yield* trigger(second, 1)
      expect((yield* awaitTerminal(second, 1, next.restockRound)).status).toBe("COMPLETED")
      const nextBodies = sender.arrivals().slice(3).map((arrival) => arrival.body as WebhookBody)
      expect(nextBodies.map((body) => body.userId)).toEqual([1, 3])
      // The same user and product, the same link, whichever process signed it.
      expect(nextBodies[0]!.unsubscribeUrl).toBe(bodies[0]!.unsubscribeUrl)
    }))
})
