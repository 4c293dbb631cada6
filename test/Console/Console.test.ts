/**
 * The operator console in a real browser (Debian's Chromium through
 * playwright-core) against the real service (`src/main.ts`, spawned).
 * Every check reads what the page shows; the API is only used to set the
 * scene (many subscribers at once) where the console has nothing to test.
 */
import { Effect, Exit, Scope } from "effect"
import type { Locator, Page } from "playwright-core"
import * as Reactivity from "@effect/experimental/Reactivity"
import type { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Sender from "../support/Sender.js"
import {
  adminRequest,
  adminToken,
  type Browser,
  launchBrowser,
  type RunningService,
  startService,
  subscribeMany
} from "./Harness.js"

// A low limit makes a round of a hundred subscribers last about two seconds: long
// enough to watch, short enough for a test.
const rateLimit = "50"

const signIn = async (page: Page, service: RunningService, token = adminToken) => {
  await page.goto(service.baseUrl + "/")
  await page.getByLabel("Admin token").fill(token)
  await page.getByRole("button", { name: "Sign in" }).click()
}

const signedIn = async (page: Page, service: RunningService) => {
  await signIn(page, service)
  await page.getByRole("heading", { name: "Products" }).waitFor()
}

const openProduct = async (page: Page, name: string) => {
  await page.locator("#product-rows").getByRole("button", { name }).click()
  await page.getByRole("heading", { name: new RegExp(`^${name} #\\d+$`) }).waitFor()
}

/** A product with `subscribers` shoppers (users 1..n, through the API), open in the signed-in console. */
const productOpenWithSubscribers = async (
  page: Page,
  service: RunningService,
  product: { readonly id: number; readonly name: string; readonly subscribers: number }
) => {
  await adminRequest(service, "PUT", `/admin/products/${product.id}`, { name: product.name, stock: 100 })
  await subscribeMany(service, product.id, 1, product.subscribers)
  await signedIn(page, service)
  await openProduct(page, product.name)
  await page.getByText(`${product.subscribers} active subscribers`).waitFor()
}

const addShopper = async (page: Page, userId: number) => {
  const form = page.locator("#shopper-form")
  await form.getByLabel("User id").fill(String(userId))
  await form.getByRole("button", { name: "Add shopper" }).click()
  await shopper(page, userId).getByText("live").waitFor()
}

const shopper = (page: Page, userId: number) => page.getByRole("listitem", { name: `Shopper ${userId}` })
const feedItems = (page: Page, userId: number) =>
  page.getByRole("list", { name: `Notifications of user ${userId}` }).getByRole("listitem")
const progressBar = (page: Page) => page.getByRole("progressbar", { name: "Round progress" })
const banner = (page: Page) => page.locator("#banner")

const restock = async (page: Page) => {
  await page.locator("#restock-form").getByRole("button", { name: "Restock" }).click()
}

interface Progress {
  readonly now: number
  readonly max: number
}

const progressOf = async (bar: Locator): Promise<Progress> => ({
  now: Number(await bar.getAttribute("aria-valuenow")),
  max: Number(await bar.getAttribute("aria-valuemax"))
})

/** Polls the progress bar until `done` holds; answers every distinct state it showed. */
const watchProgress = async (page: Page, done: (progress: Progress) => boolean, withinMs = 20_000) => {
  const seen: Array<Progress> = []
  const deadline = Date.now() + withinMs
  while (true) {
    const progress = await progressOf(progressBar(page))
    const last = seen[seen.length - 1]
    if (last === undefined || last.now !== progress.now || last.max !== progress.max) seen.push(progress)
    if (done(progress)) return seen
    if (Date.now() > deadline) throw new Error(`the progress bar never got there; it showed ${JSON.stringify(seen)}`)
    await page.waitForTimeout(40)
  }
}

interface DrawnChart {
  readonly progress: ReadonlyArray<{ readonly t: number; readonly sent: number }>
  readonly rate: ReadonlyArray<{ readonly t: number; readonly rate: number; readonly cy: number }>
  readonly limit: number | null
  readonly limitY: number | null
}

/** What the round chart draws, read back from its SVG elements. */
const chartOf = (page: Page): Promise<DrawnChart> =>
  page.locator("#round-chart-svg").evaluate((svg) => {
    const numbers = (selector: string, fields: ReadonlyArray<string>) =>
      Array.from(svg.querySelectorAll(selector)).map((element) =>
        Object.fromEntries(fields.map((field) => [field, Number(element.getAttribute(field.startsWith("c") ? field : `data-${field}`))]))
      )
    const limit = svg.querySelector(".limit-line")
    return {
      progress: numbers(".progress-point", ["t", "sent"]),
      rate: numbers(".rate-point", ["t", "rate", "cy"]),
      limit: limit === null ? null : Number(limit.getAttribute("data-limit")),
      limitY: limit === null ? null : Number(limit.getAttribute("y1"))
    } as any
  })

/** The feed's notifications, as the page shows them. */
const feedTexts = async (page: Page, userId: number) =>
  (await feedItems(page, userId).allTextContents()).filter((text) => text.includes(" is back: "))

/** Runs statements on the service's own SQLite file, as an operator at the database would. */
const onDatabase = (service: RunningService, statements: (sql: SqlClient.SqlClient) => Effect.Effect<unknown, unknown>) =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const sql = yield* SqliteClient.make({ filename: service.databaseFile })
    yield* sql`PRAGMA busy_timeout = 5000`
    yield* statements(sql)
  })).pipe(Effect.provide(Reactivity.layer)))

const withPage = async (browser: Browser, test: (page: Page) => Promise<void>) => {
  const page = await browser.context.newPage()
  const errors: Array<string> = []
  page.on("pageerror", (error) => errors.push(error.message))
  try {
    await test(page)
  } finally {
    await page.close()
  }
  expect(errors, "the page threw").toEqual([])
}

describe("the operator console", () => {
  let service: RunningService
  let browser: Browser

  beforeAll(async () => {
    browser = await launchBrowser()
    service = await startService({ env: { RATE_LIMIT_PER_SECOND: rateLimit } })
  })
  afterAll(async () => {
    await browser?.close()
    await service?.stop()
  })

  it("is served at / with its script and style, and refuses a wrong admin token", () =>
    withPage(browser, async (page) => {
      await signIn(page, service, "not-the-admin-token")
      await page.getByText("That token was refused").waitFor()
      expect(await page.getByRole("heading", { name: "Products" }).isVisible()).toBe(false)
      expect(await page.evaluate(() => sessionStorage.getItem("restock.adminToken"))).toBeNull()

      await page.getByLabel("Admin token").fill(adminToken)
      await page.getByRole("button", { name: "Sign in" }).click()
      await page.getByRole("heading", { name: "Products" }).waitFor()
      await page.getByText("No products yet").waitFor()

      // The token lives in this tab's session: a reload stays signed in, signing out forgets it.
      await page.reload()
      await page.getByRole("heading", { name: "Products" }).waitFor()
      await page.getByRole("button", { name: "Sign out" }).click()
      await page.getByLabel("Admin token").waitFor()
      expect(await page.evaluate(() => sessionStorage.getItem("restock.adminToken"))).toBeNull()
    }))

  it("creates a product, subscribes two shoppers, and shows a round reach its end while each feed gets the notification once", () =>
    withPage(browser, async (page) => {
      await signedIn(page, service)
      const form = page.getByRole("form", { name: "Create or update a product" })
      await form.getByLabel("Id").fill("1")
      await form.getByLabel("Name").fill("Blue sneakers")
      await form.getByLabel("Stock").fill("100")
      await form.getByRole("button", { name: "Save product" }).click()
      await page.getByRole("heading", { name: "Blue sneakers #1" }).waitFor()
      await page.locator("#product-rows").getByText("Blue sneakers").waitFor()

      for (const userId of [1, 2]) {
        await addShopper(page, userId)
        await shopper(page, userId).getByRole("button", { name: "Subscribe to #1" }).click()
        await shopper(page, userId).getByRole("button", { name: "Unsubscribe from #1" }).waitFor()
      }
      await page.getByText("2 active subscribers").waitFor()
      // More subscribers behind the two shoppers, so the round lasts long enough to watch.
      await subscribeMany(service, 1, 3, 100)

      await restock(page)
      const states = await watchProgress(page, ({ max, now }) => max === 100 && now === 100)
      expect(states.some(({ now }) => now > 0 && now < 100), `progress shown live: ${JSON.stringify(states)}`).toBe(true)
      await banner(page).getByText("Round #1 completed: 100 sends.").waitFor()
      expect(await page.locator("#live-count").textContent()).toBe("100 of 100 sent")
      await page.locator("#round-rows").getByText("Completed").waitFor()

      for (const userId of [1, 2]) {
        await feedItems(page, userId).filter({ hasText: "round #1" }).waitFor()
      }
      // Nothing else trickles in afterwards.
      await page.waitForTimeout(1000)
      expect(await feedTexts(page, 1)).toEqual([expect.stringContaining("Blue sneakers is back: round #1")])
      expect(await feedTexts(page, 2)).toEqual([expect.stringContaining("Blue sneakers is back: round #1")])

      // The recipients of the round, paged, in send order: the two shoppers first.
      await page.locator("#round-rows").getByRole("button", { name: "Recipients" }).click()
      await page.getByRole("heading", { name: "Recipients of round #1" }).waitFor()
      const recipients = page.locator("#recipient-list li")
      expect(await recipients.count()).toBe(50)
      expect(await recipients.nth(0).textContent()).toMatch(/^User 1 /)
      expect(await recipients.nth(1).textContent()).toMatch(/^User 2 /)
      await page.getByRole("button", { name: "More recipients" }).click()
      await page.waitForFunction(() => document.querySelectorAll("#recipient-list li").length === 100)
      expect(await page.getByRole("button", { name: "More recipients" }).isVisible()).toBe(false)

      // The service restarts: the feeds reconnect by themselves and show no notification twice.
      service = await service.restart()
      for (const userId of [1, 2]) await shopper(page, userId).getByText("live").waitFor({ timeout: 30_000 })
      await restock(page)
      await banner(page).getByText("Round #2 completed: 100 sends.").waitFor({ timeout: 20_000 })
      for (const userId of [1, 2]) {
        await feedItems(page, userId).filter({ hasText: "round #2" }).waitFor()
      }
      await page.waitForTimeout(1000)
      for (const userId of [1, 2]) {
        const texts = await feedTexts(page, userId)
        expect(texts).toHaveLength(2)
        expect(texts[0]).toContain("Blue sneakers is back: round #1")
        expect(texts[1]).toContain("Blue sneakers is back: round #2")
      }
    }), 180_000)

  it("draws the round live: sends per second against the limit and progress, point for point from the progress events, and keeps the chart once the round is over", () =>
    withPage(browser, async (page) => {
      // Every progress event the page's own stream receives, recorded before the console handles it.
      await page.addInitScript(() => {
        const Native = window.EventSource
        const seen: Array<unknown> = []
        ;(window as any).progressEvents = seen
        window.EventSource = class extends Native {
          constructor(url: string | URL, init?: EventSourceInit) {
            super(url, init)
            if (String(url).includes("/notifications/stream")) {
              this.addEventListener("progress", (event) => seen.push(JSON.parse((event as MessageEvent).data)))
            }
          }
        }
      })
      await adminRequest(service, "PUT", "/admin/products/4", { name: "Spare bulb", stock: 0 })
      await productOpenWithSubscribers(page, service, { id: 3, name: "Green lamp", subscribers: 100 })

      await restock(page)
      const chart = page.getByRole("img", { name: "Round #1: sends per second and progress over the round's time" })
      await chart.waitFor()
      // While the round runs, the chart grows with it, and its last point is what the progress bar shows.
      const growing: Array<number> = []
      while (growing.length < 3) {
        const snapshot = await chartOf(page)
        const bar = await progressOf(progressBar(page))
        if (bar.now === 100) break
        const last = snapshot.progress.at(-1)
        if (last !== undefined && last.sent === bar.now && last.sent > 0 && !growing.includes(snapshot.progress.length)) {
          growing.push(snapshot.progress.length)
        }
        await page.waitForTimeout(100)
      }
      expect(growing.length, `the chart grew while the round ran: ${growing}`).toBeGreaterThanOrEqual(2)
      await banner(page).getByText("Round #1 completed: 100 sends.").waitFor({ timeout: 20_000 })

      const drawn = await chartOf(page)
      const events = (await page.evaluate(() => (window as any).progressEvents as Array<any>))
        .filter((round) => round !== null && round.restockRound === 1)
      const final = events.at(-1)
      expect(final.status).toBe("COMPLETED")
      // Each point is an event's sends at its time since the round started, by the server's clock.
      const fromEvents = events.map((round) => ({
        t: (Date.parse(round.finishedAt ?? round.updatedAt) - Date.parse(round.startedAt)) / 1000,
        sent: round.sentCount
      }))
      const key = (point: { t: number; sent: number }) => `${point.t}:${point.sent}`
      const eventKeys = new Set(fromEvents.map(key))
      for (const point of fromEvents) expect(drawn.progress.map(key)).toContain(key(point))
      // Nothing else is drawn but the restock's own answer (the round as it opened, nothing sent yet).
      const others = drawn.progress.filter((point) => !eventKeys.has(key(point)))
      expect(others.every((point) => point.sent === 0), JSON.stringify(others)).toBe(true)
      expect(others.length).toBeLessThanOrEqual(1)
      expect(drawn.progress.at(-1)).toEqual(fromEvents.at(-1))
      expect(drawn.progress.length).toBeGreaterThanOrEqual(4)
      expect(drawn.progress.map((p) => p.t)).toEqual([...drawn.progress.map((p) => p.t)].sort((a, b) => a - b))
      expect(drawn.progress.map((p) => p.sent)).toEqual([...drawn.progress.map((p) => p.sent)].sort((a, b) => a - b))

      // The rate at each point: the sends since the earliest point at most a second before, over that time.
      const expectedRates = drawn.progress.flatMap((point, i) => {
        if (i === 0) return []
        let from = 0
        while (from < i - 1 && drawn.progress[from]!.t < point.t - 1) from++
        const span = point.t - drawn.progress[from]!.t
        return span > 0 ? [{ t: point.t, rate: (point.sent - drawn.progress[from]!.sent) / span }] : []
      })
      expect(drawn.rate.map((r) => r.t)).toEqual(expectedRates.map((r) => r.t))
      drawn.rate.forEach((r, i) => expect(r.rate).toBeCloseTo(expectedRates[i]!.rate, 9))
      // Of the right order: the round is sent at the limit.
      const rates = drawn.rate.map((r) => r.rate).sort((a, b) => a - b)
      const median = rates[Math.floor(rates.length / 2)]!
      expect(median).toBeGreaterThan(Number(rateLimit) * 0.5)
      expect(median).toBeLessThan(Number(rateLimit) * 1.25)
      // Drawn where the figures say: higher is more, later is further right, the limit line at 50/s.
      expect(drawn.limit).toBe(Number(rateLimit))
      const byRate = [...drawn.rate].sort((a, b) => a.rate - b.rate)
      for (let i = 1; i < byRate.length; i++) {
        if (byRate[i]!.rate > byRate[i - 1]!.rate) expect(byRate[i]!.cy).toBeLessThanOrEqual(byRate[i - 1]!.cy)
      }
      // (Coordinates are written to a tenth of a unit.)
      const limitAt = drawn.limitY!
      for (const r of drawn.rate) {
        if (r.rate > Number(rateLimit)) expect(r.cy).toBeLessThanOrEqual(limitAt + 0.05)
        if (r.rate < Number(rateLimit)) expect(r.cy).toBeGreaterThanOrEqual(limitAt - 0.05)
      }

      // A finished round keeps its chart: after the stream ends and reconnects, and after opening another product and back.
      await page.waitForTimeout(2000)
      expect(await chartOf(page)).toEqual(drawn)
      await openProduct(page, "Spare bulb")
      expect(await chart.isVisible()).toBe(false)
      await openProduct(page, "Green lamp")
      await chart.waitFor()
      expect((await chartOf(page)).progress).toEqual(drawn.progress)
    }), 120_000)

  it("shows and edits the minimum stock and the per-unit cap, refuses what the API refuses, and badges the stock as the service judges it", () =>
    withPage(browser, async (page) => {
      await adminRequest(service, "PUT", "/admin/products/5", { name: "Oak shelf", stock: 3 })
      const stored = () => adminRequest(service, "GET", "/products/5")
      await signedIn(page, service)
      await openProduct(page, "Oak shelf")
      const facts = page.locator("#product-facts")
      const form = page.getByRole("form", { name: "Send policy" })
      const minimum = form.getByLabel("Minimum stock")
      const perUnit = form.getByLabel("Notify per unit")
      const save = form.getByRole("button", { name: "Save policy" })
      const error = page.locator("#policy-error")
      await facts.getByText("minimum stock 0 · no per-unit cap").waitFor()
      await facts.getByText("in stock", { exact: true }).waitFor()
      expect([await minimum.inputValue(), await perUnit.inputValue()]).toEqual(["0", ""])

      // Holding back all three units sells the product out: the badges say what the service says.
      await minimum.fill("3")
      await save.click()
      await facts.getByText("minimum stock 3").waitFor()
      await facts.getByText("out of stock", { exact: true }).waitFor()
      await page.locator("#product-rows li[data-id='5']").getByText("stock 3 (out of stock) · minimum 3").waitFor()
      expect(await stored()).toMatchObject({ stock: 3, minimumStock: 3, stockStatus: "OUT_OF_STOCK", notifyPerUnit: null })

      await perUnit.fill("2")
      await save.click()
      await facts.getByText("2 per unit").waitFor()
      expect(await stored()).toMatchObject({ minimumStock: 3, notifyPerUnit: 2 })

      // What the API would refuse is refused here, saying why, and nothing is sent.
      for (
        const [field, value, message] of [
          [minimum, "-1", /^Minimum stock must be a whole number from 0 to /],
          [minimum, "1.5", /^Minimum stock must be a whole number from 0 to /],
          [minimum, "", /^Minimum stock must be a whole number from 0 to /],
          [perUnit, "0", /^Notify per unit must be a whole number from 1 to .*, or empty for no cap\.$/],
          [perUnit, "2.5", /^Notify per unit must be a whole number from 1 to /],
          [minimum, "2147483648", /^Minimum stock must be a whole number from 0 to /]
        ] as const
      ) {
        await error.evaluate((element) => {
          element.textContent = ""
        })
        await minimum.fill("3")
        await perUnit.fill("2")
        await field.fill(value)
        await save.click()
        await expect.poll(() => error.textContent()).toMatch(message)
        expect(await error.isVisible()).toBe(true)
      }
      expect(await stored()).toMatchObject({ minimumStock: 3, notifyPerUnit: 2 })

      // A refusal by the API itself (a body the console would not send, put on the wire here) shows in its words.
      await page.route("**/admin/products/5", (route) =>
        route.request().method() === "PUT"
          ? route.continue({ postData: JSON.stringify({ notifyPerUnit: 0 }) })
          : route.continue())
      await minimum.fill("3")
      await perUnit.fill("4")
      await save.click()
      await expect.poll(() => error.textContent()).toMatch(/^BadRequest: invalid request: /)
      await page.unroute("**/admin/products/5")
      expect(await stored()).toMatchObject({ minimumStock: 3, notifyPerUnit: 2 })

      // An empty cap clears it; the error goes once a save succeeds.
      await perUnit.fill("")
      await save.click()
      await facts.getByText("no per-unit cap").waitFor()
      expect(await error.isVisible()).toBe(false)
      expect(await stored()).toMatchObject({ minimumStock: 3, notifyPerUnit: null })

      // One unit above the minimum is in stock again.
      await page.getByRole("group", { name: "Adjust the stock" }).getByRole("button", { name: "+1", exact: true }).click()
      await facts.getByText("in stock", { exact: true }).waitFor()
      await facts.getByText("Stock 4").waitFor()
      await page.locator("#product-rows li[data-id='5']").getByText("stock 4 · minimum 3").waitFor()
    }), 60_000)

  it("shows a round waiting for the send window as waiting until its next opening, in local time, until it goes on", () =>
    withPage(browser, async (page) => {
      await adminRequest(service, "PUT", "/admin/products/6", { name: "Night lamp", stock: 10 })
      await subscribeMany(service, 6, 1, 3)
      // A round as a dispatcher outside the window leaves it: in progress, leased, waiting for 06:00 UTC tomorrow.
      const now = new Date()
      const opening = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1, 6, 0, 0))
      await onDatabase(service, (sql) =>
        Effect.gen(function*() {
          yield* sql`UPDATE product SET restock_round = 1 WHERE id = 6`
          yield* sql`INSERT INTO product_notification_history ${
            sql.insert({
              product_id: 6,
              restock_round: 1,
              status: "IN_PROGRESS",
              sent_count: 0,
              started_at: now.toISOString(),
              updated_at: now.toISOString(),
              lease_owner: "another-instance",
              lease_expires_at: new Date(now.getTime() + 600_000).toISOString(),
              waiting_until: opening.toISOString()
            })
          }`
        }))

      await signedIn(page, service)
      await openProduct(page, "Night lamp")
      const wait = page.locator("#live-wait")
      await wait.getByText(/^waiting until /).waitFor()
      expect(await wait.locator("time").getAttribute("datetime")).toBe(opening.toISOString())
      // The opening in the browser's own time zone.
      const localClock = await page.evaluate((iso) => {
        const date = new Date(iso)
        return `${String(date.getHours()).padStart(2, "0")}:${String(date.getMinutes()).padStart(2, "0")}`
      }, opening.toISOString())
      expect(await wait.textContent()).toContain(localClock)
      await page.locator("#round-rows").getByText(/waiting until .*\d\d:\d\d/).waitFor()
      expect(await banner(page).isVisible()).toBe(false)

      // The window opens: the round goes on, no longer waiting.
      await onDatabase(service, (sql) =>
        sql`UPDATE product_notification_history SET waiting_until = NULL, updated_at = ${new Date().toISOString()}
          WHERE product_id = 6 AND restock_round = 1`)
      await wait.waitFor({ state: "hidden", timeout: 10_000 })
      await expect.poll(() => page.locator("#round-rows").getByText("waiting until").count(), { timeout: 10_000 }).toBe(0)
      await onDatabase(service, (sql) =>
        sql`UPDATE product_notification_history SET status = 'COMPLETED', finished_at = ${new Date().toISOString()},
            updated_at = ${new Date().toISOString()}, lease_owner = NULL, lease_expires_at = NULL
          WHERE product_id = 6 AND restock_round = 1`)
      await banner(page).getByText("Round #1 completed: 0 sends.").waitFor({ timeout: 10_000 })
    }), 60_000)

  it("shows the sold-out banner when the stock is set to 0 during a round", () =>
    withPage(browser, async (page) => {
      await productOpenWithSubscribers(page, service, { id: 2, name: "Red scarf", subscribers: 250 })

      await restock(page)
      await watchProgress(page, ({ now }) => now >= 10)
      const stockForm = page.locator("#stock-form")
      await stockForm.getByLabel("Stock").fill("0")
      await stockForm.getByRole("button", { name: "Set stock" }).click()

      const soldOut = banner(page).getByText(/^Sold out: round #1 stopped after (\d+) sends\.$/)
      await soldOut.waitFor({ timeout: 20_000 })
      const sent = Number(/after (\d+) sends/.exec((await soldOut.textContent())!)![1])
      expect(sent).toBeGreaterThanOrEqual(10)
      expect(sent).toBeLessThan(250)
      expect(await progressOf(progressBar(page))).toEqual({ now: sent, max: 250 })
      await page.locator("#round-rows").getByText("Sold out").waitFor()
      await page.locator("#product-facts").getByText("out of stock").waitFor()
      // Nothing to resume after a sell-out.
      expect(await page.getByRole("button", { name: "Resume" }).count()).toBe(0)
    }), 120_000)
})

describe("the operator console with a failing sender", () => {
  let scope: Scope.CloseableScope
  let sender: Sender.TestSender
  let service: RunningService
  let browser: Browser

  beforeAll(async () => {
    scope = Effect.runSync(Scope.make())
    sender = await Effect.runPromise(Scope.extend(Sender.start(), scope))
    browser = await launchBrowser()
    service = await startService({
      env: { RATE_LIMIT_PER_SECOND: rateLimit, NOTIFIER: "webhook", NOTIFIER_WEBHOOK_URL: sender.url }
    })
  })
  afterAll(async () => {
    await browser?.close()
    await service?.stop()
    if (scope) await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  it("shows the error that stopped a round, and Resume finishes it", () =>
    withPage(browser, async (page) => {
      await adminRequest(service, "PUT", "/admin/products/1", { name: "Green mug", stock: 100 })
      await subscribeMany(service, 1, 1, 40)
      // User 25's address is refused, for good: a 400 is not retried.
      sender.setScript(Sender.forUsers([25], { status: 400, body: `{"error":"unknown recipient"}` }))

      await signedIn(page, service)
      await openProduct(page, "Green mug")
      await restock(page)
      const stopped = banner(page).getByText(/^Round #1 stopped by an error after \d+ sends: .*HTTP 400/)
      await stopped.waitFor({ timeout: 20_000 })
      expect(await stopped.textContent()).toContain("unknown recipient")
      await page.locator("#round-rows").getByText("Error", { exact: true }).waitFor()
      expect((await progressOf(progressBar(page))).now).toBeLessThan(40)

      // The sender takes user 25 now; the operator resumes the same round.
      sender.setScript(undefined)
      await banner(page).getByRole("button", { name: "Resume" }).click()
      await banner(page).getByText("Round #1 completed: 40 sends.").waitFor({ timeout: 20_000 })
      expect(await progressOf(progressBar(page))).toEqual({ now: 40, max: 40 })
      expect(await page.locator("#round-rows tr").count()).toBe(1)
      await page.locator("#round-rows").getByText("Completed").waitFor()

      // Every subscriber got it, once: the sender saw each user succeed exactly once.
      const delivered = sender.arrivals().filter((arrival) => arrival.status === 200).map((arrival) => arrival.userId)
      expect([...delivered].sort((a, b) => a! - b!)).toEqual(Array.from({ length: 40 }, (_, index) => index + 1))
    }), 120_000)
})

describe("the operator console with a history retention", () => {
  let service: RunningService
  let browser: Browser

  beforeAll(async () => {
    browser = await launchBrowser()
    // 45 s: a pass about every second; the test ages the records instead of waiting for them to expire.
    service = await startService({ env: { RATE_LIMIT_PER_SECOND: rateLimit, HISTORY_RETENTION: "45s" } })
  })
  afterAll(async () => {
    await browser?.close()
    await service?.stop()
  })

  it("says a round's recipients were pruned instead of showing an empty list", () =>
    withPage(browser, async (page) => {
      await adminRequest(service, "PUT", "/admin/products/1", { name: "Red kettle", stock: 100 })
      await subscribeMany(service, 1, 1, 5)
      await adminRequest(service, "POST", "/products/1/notifications/re-stock")
      await expect.poll(async () => (await adminRequest(service, "GET", "/products/1/notifications/1")).status, {
        timeout: 10_000
      }).toBe("COMPLETED")
      // The records are made old (the service's own clock would take 45 s); the next pass prunes them.
      const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000).toISOString()
      await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const sql = yield* SqliteClient.make({ filename: service.databaseFile })
        yield* sql`PRAGMA busy_timeout = 5000`
        yield* sql`UPDATE product_user_notification_history SET sent_at = ${twoHoursAgo} WHERE product_id = 1`
      })).pipe(Effect.provide(Reactivity.layer)))
      const recipientsStatus = async () =>
        (await fetch(`${service.baseUrl}/products/1/notifications/1/recipients`, {
          headers: { authorization: `Bearer ${adminToken}` }
        })).status
      await expect.poll(recipientsStatus, { timeout: 15_000 }).toBe(410)

      await signedIn(page, service)
      await openProduct(page, "Red kettle")
      await page.locator("#round-rows").getByRole("button", { name: "Recipients" }).click()
      await page.getByRole("heading", { name: "Recipients of round #1" }).waitFor()
      const items = page.locator("#recipient-list li")
      await items.first().waitFor()
      expect(await items.allTextContents()).toEqual([expect.stringMatching(/recipients were pruned/)])
      expect(await page.getByRole("button", { name: "More recipients" }).isVisible()).toBe(false)
    }), 60_000)
})
