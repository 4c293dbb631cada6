/**
 * A real service process on MariaDB and Redis with a send window that is
 * closed now (SPEC §3.12): a trigger answers `IN_PROGRESS` with
 * `waitingUntil`, nothing reaches the sender, every read of the round says
 * when it starts, and SIGTERM while it waits ends it `CANCELED_BY_ERROR`
 * "shutdown", resumable. (Waiting through the night and going on is tested in
 * virtual time: `test/Dispatch/Controls.test.ts`.)
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { webhooksOf } from "../support/Deliveries.js"
import * as TestSender from "../support/Sender.js"
import { Backing, expectStatus, layerBacking, type RoundJson, seedProduct, start, trigger } from "../support/Service.js"

const pad = (n: number) => String(n).padStart(2, "0")
/** `HH:MM` in UTC, `hours` from now. */
const clockIn = (hours: number) => {
  const at = new Date(Date.now() + hours * 3_600_000)
  return `${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())}`
}

layer(layerBacking, { excludeTestServices: true, timeout: "2 minutes" })("a send window closed now, in a real process", (it) => {
  it.scoped("the round opens waiting, sends nothing, says until when, and a SIGTERM while it waits leaves it resumable", () =>
    Effect.gen(function*() {
      const backing = yield* Backing
      const sender = yield* TestSender.start({ latency: { minMs: 5, maxMs: 10 } })
      // Opens in two hours, for an hour: closed now whatever the time of day.
      const window = `${clockIn(2)}-${clockIn(3)}`
      const service = yield* start({
        name: "windowed",
        ...backing,
        webhookUrl: sender.url,
        env: { SEND_WINDOW: window, SEND_WINDOW_TIMEZONE: "UTC" }
      })
      yield* seedProduct(service, 1, { stock: 10, subscribers: 20 })

      const opened = yield* trigger(service, 1)
      expect(opened.status).toBe("IN_PROGRESS")
      const waitingUntil = Date.parse(opened.waitingUntil!)
      // The next opening: the window's start, at most two hours (and a minute's rounding) away.
      expect(waitingUntil - Date.now()).toBeGreaterThan(60 * 60_000)
      expect(waitingUntil - Date.now()).toBeLessThanOrEqual(2 * 3_600_000)
      expect(new Date(waitingUntil).toISOString().slice(11, 16)).toBe(window.slice(0, 5))

      yield* Effect.sleep("1500 millis")
      expect(webhooksOf(sender, 1)).toEqual([])
      const read = expectStatus(service, "reading the round", yield* service.request("GET", `/products/1/notifications/${opened.restockRound}`), 200)
        .body as RoundJson
      expect(read).toMatchObject({ status: "IN_PROGRESS", sentCount: 0, waitingUntil: opened.waitingUntil })

      expect(yield* service.kill("SIGTERM")).toEqual({ code: 0, signal: null })
      const again = yield* start({ name: "after", ...backing, webhookUrl: sender.url })
      const stopped = expectStatus(again, "reading the round", yield* again.request("GET", `/products/1/notifications/${opened.restockRound}`), 200)
        .body as RoundJson
      expect(stopped).toMatchObject({ status: "CANCELED_BY_ERROR", error: "shutdown", sentCount: 0, waitingUntil: null })
      // Without a window, the resume sends everyone at once.
      const resumed = yield* again.request("POST", "/admin/products/1/notifications/re-stock")
      expect(resumed.status).toBe(202)
      expect(resumed.body.waitingUntil).toBeNull()
    }))
})
