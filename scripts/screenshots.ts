/**
 * `npm run screenshots`: regenerates the console's pictures in `docs/` from
 * the real service and a real browser — a round going out to two shoppers,
 * at a laptop's width and at a phone's, and the round once it completed.
 * Needs Debian's Chromium (`apt-get install -y chromium`).
 */
import { join } from "node:path"
import type { Page } from "playwright-core"
import {
  adminRequest,
  adminToken,
  launchBrowser,
  repositoryRoot,
  startService,
  subscribeMany
} from "../test/Console/Harness.js"

const docs = join(repositoryRoot, "docs")
const laptop = { width: 1280, height: 800 }
const phone = { width: 390, height: 844 }

const service = await startService({ env: { RATE_LIMIT_PER_SECOND: "50" } })
const browser = await launchBrowser()
try {
  // Other products, so the list looks like a shop's.
  await adminRequest(service, "PUT", "/admin/products/2", { name: "Red scarf", stock: 0 })
  await subscribeMany(service, 2, 1, 40)
  await adminRequest(service, "POST", "/products/2/notifications/re-stock")
  await adminRequest(service, "PUT", "/admin/products/3", { name: "Green mug", stock: 12 })
  await subscribeMany(service, 3, 1, 8)

  const page = await browser.context.newPage()
  await page.setViewportSize(laptop)
  await page.goto(`${service.baseUrl}/`)
  await page.getByLabel("Admin token").fill(adminToken)
  await page.getByRole("button", { name: "Sign in" }).click()

  const form = page.getByRole("form", { name: "Create or update a product" })
  await form.getByLabel("Id").fill("1")
  await form.getByLabel("Name").fill("Blue sneakers")
  await form.getByLabel("Stock").fill("120")
  await form.getByRole("button", { name: "Save product" }).click()
  await page.getByRole("heading", { name: "Blue sneakers #1" }).waitFor()

  for (const userId of [1, 2]) {
    await page.locator("#shopper-form").getByLabel("User id").fill(String(userId))
    await page.locator("#shopper-form").getByRole("button", { name: "Add shopper" }).click()
    const shopper = page.getByRole("listitem", { name: `Shopper ${userId}` })
    await shopper.getByText("live").waitFor()
    await shopper.getByRole("button", { name: "Subscribe to #1" }).click()
    await shopper.getByRole("button", { name: "Unsubscribe from #1" }).waitFor()
  }
  await subscribeMany(service, 1, 3, 300)
  await page.getByRole("button", { name: "Refresh" }).click()
  await page.getByText("300 active subscribers").waitFor()

  await page.locator("#restock-form").getByRole("button", { name: "Restock" }).click()
  await progressAtLeast(page, 110)
  await page.screenshot({ path: join(docs, "console-round.png") })
  await page.setViewportSize(phone)
  await page.waitForTimeout(300)
  await page.screenshot({ path: join(docs, "console-phone.png") })
  await page.setViewportSize(laptop)
  await page.getByText("Round #1 completed: 300 sends.").waitFor({ timeout: 30_000 })
  await page.waitForTimeout(300)
  await page.screenshot({ path: join(docs, "console-completed.png") })
  console.log(`screenshots written to ${docs}`)
} finally {
  await browser.close()
  await service.stop()
}

async function progressAtLeast(page: Page, sent: number) {
  await page.waitForFunction(
    (wanted) => Number(document.getElementById("progress")?.getAttribute("aria-valuenow")) >= wanted,
    sent,
    { timeout: 30_000, polling: 50 }
  )
}
