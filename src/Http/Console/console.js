// The operator console: plain DOM and fetch/EventSource against the service's
// own HTTP API, nothing else. Text from the server is only ever set as text.
//
// One page's script, over ~350 lines on purpose: it is served as written (no
// bundler, no build step of its own), and its sections below (sign in,
// products, one product's rounds and progress, the send policy, shoppers,
// wiring) all read and write the one `state` and share the helpers at the
// top; a part that stands alone, the round chart, is its own module (chart.js).

import { drawRoundChart, progressPoint } from "./chart.js"

const $ = (id) => document.getElementById(id)
const tokenKey = "restock.adminToken"
const shoppersKey = "restock.shoppers"
const pageSize = 20
const recipientsPageSize = 50

const statusLabels = {
  IN_PROGRESS: "In progress",
  COMPLETED: "Completed",
  CANCELED_BY_SOLD_OUT: "Sold out",
  CANCELED_BY_ERROR: "Error"
}

const state = {
  token: sessionStorage.getItem(tokenKey),
  page: { afterId: null, nextAfterId: null },
  /** The open product: its summary, rounds and live progress. */
  product: null,
  /** userId → { userId, token, subscriptions: Set, seen: Set, items: [], source, element } */
  shoppers: new Map(),
  /** "productId:restockRound" → the round's progress points `{ t, sent }`, kept for the page's life. */
  charts: new Map(),
  /** The service's send limit per second (from /metrics), or null until known. */
  rateLimit: null
}

// ---------------------------------------------------------------------------
// Small helpers

/** An element with attributes (`on*` become listeners) and children (strings become text). */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag)
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value)
    else if (name === "class") element.className = value
    else element.setAttribute(name, value === true ? "" : String(value))
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false))
  return element
}

const time = (iso) => (iso ? new Date(iso).toLocaleTimeString([], { hourCycle: "h23" }) : "—")
const number = (value) => new Intl.NumberFormat().format(value)

/** A moment in the browser's time zone, its day named unless it is today; the exact instant in `datetime`. */
function localMoment(iso) {
  const date = new Date(iso)
  const clock = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }
  const text = date.toDateString() === new Date().toDateString()
    ? date.toLocaleTimeString([], clock)
    : date.toLocaleString([], { weekday: "short", day: "numeric", month: "short", ...clock })
  return h("time", { datetime: iso, title: date.toString() }, text)
}

/** What to say of a round waiting for the send window: "waiting until" its next opening; `null` when it is not waiting. */
const waitingNote = (round) =>
  round.status === "IN_PROGRESS" && round.waitingUntil ? ["waiting until ", localMoment(round.waitingUntil)] : null

function statusChip(status) {
  return h("span", { class: `chip status-${status}`, title: status }, statusLabels[status] ?? status)
}

class ApiError extends Error {
  constructor(status, tag, message) {
    super(message)
    this.status = status
    this.tag = tag
  }
}

/** Calls the API as the admin (or with `token`); fails with the error body's message. */
async function api(method, path, { body, token = state.token } = {}) {
  const headers = { authorization: `Bearer ${token}` }
  if (body !== undefined) headers["content-type"] = "application/json"
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await response.text()
  let data
  try {
    data = text === "" ? undefined : JSON.parse(text)
  } catch {
    data = { message: text }
  }
  if (!response.ok) throw new ApiError(response.status, data?._tag, data?.message ?? `${response.status} ${response.statusText}`)
  return data
}

/** Runs an action from a button or form; shows what went wrong instead of failing silently. */
async function attempt(action) {
  try {
    showNotice(null)
    await action()
  } catch (error) {
    if (error instanceof ApiError && error.status === 401 && state.token !== null) {
      signOut("The admin token was refused: sign in again.")
    } else {
      showNotice(error instanceof ApiError ? `${error.tag ?? "Error"}: ${error.message}` : String(error))
    }
  }
}

function showNotice(message) {
  $("notice").hidden = message === null
  $("notice").textContent = message ?? ""
}

/**
 * An EventSource that reports when it is gone for good: refused by the
 * server (EventSource then stops retrying), or stuck connecting (a request
 * the server accepted but never answered, as while it starts). Until then
 * the browser reconnects by itself, with `Last-Event-ID`.
 */
function openStream(url, { events, onOpen = () => {}, onRetry = () => {}, onGone }) {
  const source = new EventSource(url)
  let stall
  const gone = () => {
    clearTimeout(stall)
    source.close()
    onGone()
  }
  const watch = () => {
    clearTimeout(stall)
    stall = setTimeout(() => source.readyState !== EventSource.OPEN && gone(), 10_000)
  }
  watch()
  source.addEventListener("open", () => {
    clearTimeout(stall)
    onOpen()
  })
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) return gone()
    onRetry()
    watch()
  })
  for (const [name, listener] of Object.entries(events)) source.addEventListener(name, listener)
  return { close: () => (clearTimeout(stall), source.close()) }
}

const formNumber = (form, name) => {
  const raw = form.elements[name].value.trim()
  return raw === "" ? undefined : Number(raw)
}

// ---------------------------------------------------------------------------
// Sign in

async function signIn(token) {
  try {
    // Any admin endpoint tells a good token from a bad one.
    await api("GET", "/admin/products?limit=1", { token })
  } catch (error) {
    return signOut(
      error instanceof ApiError && (error.status === 401 || error.status === 403)
        ? `That token was refused: ${error.message}.`
        : `Could not reach the service: ${error.message}`
    )
  }
  state.token = token
  sessionStorage.setItem(tokenKey, token)
  $("sign-in-error").textContent = ""
  showConsole()
}

function signOut(message = "") {
  state.token = null
  sessionStorage.removeItem(tokenKey)
  closeProduct()
  for (const shopper of state.shoppers.values()) shopper.source?.close()
  state.shoppers.clear()
  $("shopper-list").replaceChildren()
  $("console").hidden = true
  $("sign-out").hidden = true
  $("sign-in").hidden = false
  $("sign-in-error").textContent = message
  $("admin-token").value = ""
  $("admin-token").focus()
}

function showConsole() {
  $("sign-in").hidden = true
  $("console").hidden = false
  $("sign-out").hidden = false
  loadProducts()
  restoreShoppers()
  loadRateLimit()
}

/** The configured limit, which the round chart draws as a line: `restock_rate_limit_per_second` on /metrics. */
async function loadRateLimit() {
  try {
    const response = await fetch("/metrics")
    const value = /^restock_rate_limit_per_second(?:\{[^}]*\})? (\S+)$/m.exec(await response.text())?.[1]
    state.rateLimit = value === undefined ? null : Number(value)
    if (state.product !== null) showLive()
  } catch {
    // Without it the chart has no limit line; nothing else depends on it.
  }
}

// ---------------------------------------------------------------------------
// Products

async function loadProducts(afterId = state.page.afterId) {
  const query = new URLSearchParams({ limit: String(pageSize) })
  if (afterId !== null) query.set("afterId", String(afterId))
  const page = await api("GET", `/admin/products?${query}`)
  state.page = { afterId, nextAfterId: page.nextAfterId }
  $("product-rows").replaceChildren(...page.items.map(productRow))
  $("products-empty").hidden = page.items.length > 0 || afterId !== null
  $("products-next").disabled = page.nextAfterId === null
  $("products-first").disabled = afterId === null
  const open = state.product && page.items.find((item) => item.id === state.product.id)
  if (open) showSummary(open)
}

function productRow(product) {
  const latest = product.latestRound
  return h(
    "li",
    { "data-id": product.id, class: state.product?.id === product.id ? "selected" : undefined },
    h(
      "div",
      { class: "product-line" },
      h("button", { type: "button", class: "link", onclick: () => attempt(() => openProduct(product.id)) }, product.name),
      h("span", { class: "muted" }, ` #${product.id}`),
      latest ? h("span", { class: "latest" }, `round #${latest.restockRound} `, statusChip(latest.status)) : null
    ),
    h(
      "div",
      { class: "muted small" },
      `stock ${number(product.stock)}${product.stockStatus === "IN_STOCK" ? "" : " (out of stock)"}`,
      product.minimumStock > 0 ? ` · minimum ${number(product.minimumStock)}` : "",
      product.notifyPerUnit === null ? "" : ` · ${number(product.notifyPerUnit)} per unit`,
      ` · ${number(product.activeSubscribers)} subscriber${product.activeSubscribers === 1 ? "" : "s"}`
    )
  )
}

async function saveProduct(form) {
  const id = formNumber(form, "id")
  const body = {}
  const name = form.elements.name.value.trim()
  if (name !== "") body.name = name
  const stock = formNumber(form, "stock")
  if (stock !== undefined) body.stock = stock
  await api("PUT", `/admin/products/${id}`, { body })
  form.reset()
  await loadProducts()
  await openProduct(id)
}

// ---------------------------------------------------------------------------
// One product: its rounds, live progress, recipients

/** The product's summary (with active subscribers): the one-item page starting at its id. */
async function fetchSummary(id) {
  const page = await api("GET", id === 1 ? "/admin/products?limit=1" : `/admin/products?afterId=${id - 1}&limit=1`)
  const summary = page.items[0]
  if (!summary || summary.id !== id) throw new ApiError(404, "ProductNotFound", `product ${id} does not exist`)
  return summary
}

async function openProduct(id) {
  const summary = await fetchSummary(id)
  closeProduct()
  state.product = { id, summary, rounds: [], live: summary.latestRound, samples: [], source: null, recipients: null }
  delete $("policy-form").dataset.editing
  showPolicyError(null)
  $("product-none").hidden = true
  $("product-view").hidden = false
  showSummary(summary)
  showLive()
  await loadRounds()
  followProgress()
  renderShoppers()
  for (const row of $("product-rows").children) row.classList.toggle("selected", row.dataset.id === String(id))
}

function closeProduct() {
  if (state.product === null) return
  state.product.source?.close()
  clearTimeout(state.product.reconnect)
  state.product = null
  $("product-view").hidden = true
  $("product-none").hidden = false
  $("recipients").hidden = true
}

function showSummary(summary) {
  state.product.summary = summary
  $("product-title").textContent = `${summary.name} #${summary.id}`
  $("product-facts").replaceChildren(
    `Stock ${number(summary.stock)} `,
    // The service's own verdict: it counts the minimum stock as zero.
    h("span", { class: `chip stock-${summary.stockStatus}` }, summary.stockStatus === "IN_STOCK" ? "in stock" : "out of stock"),
    ` · minimum stock ${number(summary.minimumStock)}`,
    summary.notifyPerUnit === null ? " · no per-unit cap" : ` · ${number(summary.notifyPerUnit)} per unit`,
    ` · ${number(summary.activeSubscribers)} active subscriber${summary.activeSubscribers === 1 ? "" : "s"}`,
    ` · ${summary.restockRound} round${summary.restockRound === 1 ? "" : "s"}`
  )
  fillPolicy(summary)
  showLive()
}

// ---------------------------------------------------------------------------
// The send policy: minimum stock and the per-unit cap (SPEC §3.10–§3.11)

const maxInt = 2_147_483_647

/** Shows the product's policy in its form, unless the operator is editing it (a refresh must not undo typing). */
function fillPolicy(summary) {
  const form = $("policy-form")
  if (form.dataset.editing === "true") return
  form.elements.minimumStock.value = String(summary.minimumStock)
  form.elements.notifyPerUnit.value = summary.notifyPerUnit === null ? "" : String(summary.notifyPerUnit)
}

function showPolicyError(message) {
  $("policy-error").hidden = message === null
  $("policy-error").textContent = message ?? ""
}

/** A whole number from `min` to the column's largest (what the API accepts), or why not. */
function wholeNumber(input, min) {
  const raw = input.value.trim()
  if (input.validity.badInput) return { error: "not a number" }
  const value = Number(raw)
  if (raw === "" || !Number.isInteger(value) || value < min || value > maxInt) {
    return { error: `must be a whole number from ${min} to ${number(maxInt)}` }
  }
  return { value }
}

/** The fields of the form that differ from the product shown, validated as the API validates them. */
function policyChanges(form, summary) {
  const minimum = wholeNumber(form.elements.minimumStock, 0)
  if (minimum.error) return { error: `Minimum stock ${minimum.error}.` }
  const perUnitInput = form.elements.notifyPerUnit
  const perUnit = perUnitInput.value.trim() === "" && !perUnitInput.validity.badInput
    ? { value: null }
    : wholeNumber(perUnitInput, 1)
  if (perUnit.error) return { error: `Notify per unit ${perUnit.error}, or empty for no cap.` }
  const body = {}
  // Only what changed: an edit of one field never writes back a stale value of the other.
  if (minimum.value !== summary.minimumStock) body.minimumStock = minimum.value
  if (perUnit.value !== summary.notifyPerUnit) body.notifyPerUnit = perUnit.value
  return { body }
}

async function savePolicy(form) {
  const product = state.product
  const changes = policyChanges(form, product.summary)
  showPolicyError(changes.error ?? null)
  if (changes.error) return
  try {
    if (Object.keys(changes.body).length > 0) await api("PUT", `/admin/products/${product.id}`, { body: changes.body })
  } catch (error) {
    // A refusal is the API's to word: shown beside the form, as it says it.
    if (!(error instanceof ApiError && error.status === 400)) throw error
    return showPolicyError(`${error.tag ?? "Error"}: ${error.message}`)
  }
  delete form.dataset.editing
  await refreshProduct()
}

/** The list, and the open product's figures: what other clients changed shows within seconds. */
async function refreshAll() {
  if (state.product !== null) await refreshProduct()
  else await loadProducts()
}

async function refreshProduct() {
  if (state.product === null) return
  const id = state.product.id
  const summary = await fetchSummary(id)
  if (state.product?.id !== id) return
  showSummary(summary)
  await loadRounds()
  await loadProducts()
}

async function loadRounds() {
  const id = state.product.id
  const rounds = await api("GET", `/products/${id}/notifications`)
  if (state.product?.id !== id) return
  state.product.rounds = rounds
  $("rounds-empty").hidden = rounds.length > 0
  $("round-rows").replaceChildren(...rounds.map((round, index) => roundRow(round, index === 0)))
}

/** A round can be resumed when it ended in error, or when it stalled (its dispatcher is gone). */
function resumable(round) {
  if (round.status === "CANCELED_BY_ERROR") return true
  return round.status === "IN_PROGRESS" && Date.now() - new Date(round.updatedAt).getTime() > 15_000
}

function roundRow(round, latest) {
  return h(
    "tr",
    {},
    h("td", {}, `#${round.restockRound}`),
    h(
      "td",
      {},
      statusChip(round.status),
      round.error ? h("div", { class: "error small" }, round.error) : null,
      waitingNote(round) === null ? null : h("div", { class: "wait small" }, ...waitingNote(round))
    ),
    h("td", {}, number(round.sentCount)),
    h("td", {}, round.lastSentUserId ?? "—"),
    h("td", { class: "time" }, time(round.startedAt), round.finishedAt ? h("div", { class: "muted" }, `→ ${time(round.finishedAt)}`) : null),
    h(
      "td",
      { class: "actions" },
      h("button", { type: "button", class: "quiet", onclick: () => attempt(() => showRecipients(round.restockRound)) }, "Recipients"),
      latest && resumable(round) ? h("button", { type: "button", onclick: () => attempt(resume) }, "Resume") : null
    )
  )
}

async function restock(form) {
  const stock = formNumber(form, "stock")
  const round = await api("POST", `/products/${state.product.id}/notifications/re-stock`, {
    body: stock === undefined ? undefined : { stock }
  })
  form.reset()
  onProgress(round)
  await refreshProduct()
}

async function resume() {
  const round = await api("POST", `/admin/products/${state.product.id}/notifications/re-stock`)
  onProgress(round)
  await refreshProduct()
}

async function setStock(form) {
  await api("PUT", `/admin/products/${state.product.id}/stock`, { body: { stock: formNumber(form, "stock") } })
  form.reset()
  await refreshProduct()
}

async function adjustStock(delta) {
  await api("POST", `/admin/products/${state.product.id}/stock/adjustments`, { body: { delta } })
  await refreshProduct()
}

/** Follows the admin progress stream of the open product; reopens it when it ends. */
/**
 * Follows the admin progress stream of the open product. The server ends it
 * after a round's terminal status; EventSource reconnects, and the first
 * event is the latest round again.
 */
function followProgress() {
  const product = state.product
  product.source = openStream(
    `/admin/products/${product.id}/notifications/stream?access_token=${encodeURIComponent(state.token)}`,
    {
      events: { progress: (event) => state.product === product && onProgress(JSON.parse(event.data)) },
      onGone: () => {
        product.reconnect = setTimeout(() => state.product === product && followProgress(), 1000)
      }
    }
  )
}

function onProgress(round) {
  const product = state.product
  if (round === null) return showLive()
  const previous = product.live
  // Answers and events can cross: never go back to an older state of the round.
  if (previous !== null && round.restockRound < previous.restockRound) return
  const isNewRound = previous === null || previous.restockRound !== round.restockRound
  if (!isNewRound && Date.parse(round.updatedAt) < Date.parse(previous.updatedAt)) return
  if (isNewRound || previous.status !== round.status) product.samples = []
  product.live = round
  recordPoint(product.id, round)
  product.samples.push({ at: performance.now(), sent: round.sentCount })
  product.samples = product.samples.filter((sample) => sample.at > performance.now() - 3000)
  showLive()
  if (isNewRound || previous.status !== round.status) attempt(refreshProduct)
  else if (round.status === "IN_PROGRESS") updateRoundRow(round)
}

/** Adds the round's state to its chart, unless it moves nothing (the same instant and count) or is older. */
function recordPoint(productId, round) {
  const key = `${productId}:${round.restockRound}`
  const points = state.charts.get(key) ?? []
  state.charts.set(key, points)
  const point = progressPoint(round)
  const last = points[points.length - 1]
  if (last !== undefined && (point.t < last.t || (point.t === last.t && point.sent === last.sent))) return
  points.push(point)
}

function showChart(product, round, total) {
  const points = state.charts.get(`${product.id}:${round.restockRound}`) ?? []
  $("round-chart").hidden = points.length === 0
  if (points.length === 0) return
  drawRoundChart($("round-chart-svg"), { points, limit: state.rateLimit, total, restockRound: round.restockRound })
}

function updateRoundRow(round) {
  const index = state.product.rounds.findIndex((known) => known.restockRound === round.restockRound)
  if (index === -1) return
  state.product.rounds[index] = round
  $("round-rows").children[index]?.replaceWith(roundRow(round, index === 0))
}

/** Sends per second over the last few seconds of progress events. */
function currentRate(samples) {
  if (samples.length < 2) return null
  const first = samples[0]
  const last = samples[samples.length - 1]
  const seconds = (last.at - first.at) / 1000
  return seconds > 0.2 ? (last.sent - first.sent) / seconds : null
}

function showLive() {
  const product = state.product
  const round = product?.live
  $("live").hidden = !round
  if (!round) return
  const total = Math.max(product.summary.activeSubscribers, round.sentCount)
  const fraction = total === 0 ? (round.status === "IN_PROGRESS" ? 0 : 1) : round.sentCount / total
  const progress = $("progress")
  progress.setAttribute("aria-valuemax", String(total))
  progress.setAttribute("aria-valuenow", String(round.sentCount))
  progress.dataset.status = round.status
  progress.querySelector(".fill").style.width = `${Math.min(100, fraction * 100).toFixed(1)}%`
  $("live-title").replaceChildren(`Round #${round.restockRound} `, statusChip(round.status))
  $("live-count").textContent = `${number(round.sentCount)} of ${number(total)} sent`
  showChart(product, round, total)
  const waiting = waitingNote(round)
  $("live-wait").hidden = waiting === null
  $("live-wait").replaceChildren(...(waiting ?? []))
  if (waiting !== null) {
    $("live-rate").textContent = ""
  } else if (round.status === "IN_PROGRESS") {
    const rate = currentRate(product.samples)
    $("live-rate").textContent = rate === null ? "" : `${rate.toFixed(1)} sends/s`
  } else {
    const seconds = round.finishedAt ? (new Date(round.finishedAt) - new Date(round.startedAt)) / 1000 : 0
    $("live-rate").textContent = seconds > 0 && round.sentCount > 0 ? `${(round.sentCount / seconds).toFixed(1)} sends/s on average` : ""
  }
  showBanner(round)
}

function showBanner(round) {
  const banner = $("banner")
  const sends = `${number(round.sentCount)} send${round.sentCount === 1 ? "" : "s"}`
  const messages = {
    COMPLETED: `Round #${round.restockRound} completed: ${sends}.`,
    CANCELED_BY_SOLD_OUT: `Sold out: round #${round.restockRound} stopped after ${sends}.`,
    CANCELED_BY_ERROR: `Round #${round.restockRound} stopped by an error after ${sends}: ${round.error ?? "unknown error"}`
  }
  banner.hidden = round.status === "IN_PROGRESS"
  banner.className = `banner status-${round.status}`
  banner.setAttribute("role", round.status === "CANCELED_BY_ERROR" ? "alert" : "status")
  $("banner-text").textContent = messages[round.status] ?? ""
  $("banner-resume").hidden = !resumable(round)
}

async function showRecipients(restockRound, afterId = null) {
  const id = state.product.id
  const query = new URLSearchParams({ limit: String(recipientsPageSize) })
  if (afterId !== null) query.set("afterId", String(afterId))
  let page
  try {
    page = await api("GET", `/products/${id}/notifications/${restockRound}/recipients?${query}`)
  } catch (error) {
    // 410: the retention deleted records of this round; an empty or partial list would mislead.
    if (!(error instanceof ApiError && error.status === 410)) throw error
    if (state.product?.id !== id) return
    state.product.recipients = { restockRound, nextAfterId: null }
    $("recipients").hidden = false
    $("recipients-title").textContent = `Recipients of round #${restockRound}`
    $("recipient-list").replaceChildren(
      h("li", { class: "muted pruned" }, "The recipients were pruned: their records are older than the history retention.")
    )
    $("recipients-more").hidden = true
    return
  }
  if (state.product?.id !== id) return
  state.product.recipients = { restockRound, nextAfterId: page.nextAfterId }
  $("recipients").hidden = false
  $("recipients-title").textContent = `Recipients of round #${restockRound}`
  const items = page.items.map((item) => h("li", {}, `User ${item.userId}`, h("span", { class: "muted" }, ` ${time(item.sentAt)}`)))
  if (afterId === null) $("recipient-list").replaceChildren(...items)
  else $("recipient-list").append(...items)
  if (afterId === null && items.length === 0) $("recipient-list").replaceChildren(h("li", { class: "muted" }, "Nobody yet."))
  $("recipients-more").hidden = page.nextAfterId === null
}

// ---------------------------------------------------------------------------
// Shoppers: simulated users with their own token and notification stream

function saveShoppers() {
  const saved = [...state.shoppers.values()].map((shopper) => ({
    userId: shopper.userId,
    subscriptions: [...shopper.subscriptions]
  }))
  sessionStorage.setItem(shoppersKey, JSON.stringify(saved))
}

function restoreShoppers() {
  const saved = JSON.parse(sessionStorage.getItem(shoppersKey) ?? "[]")
  for (const { subscriptions, userId } of saved) attempt(() => addShopper(userId, subscriptions))
}

async function addShopper(userId, subscriptions = []) {
  if (state.shoppers.has(userId)) return
  const { token } = await api("POST", `/admin/users/${userId}/token`)
  const shopper = { userId, token, subscriptions: new Set(subscriptions), seen: new Set(), items: [], source: null, status: "connecting" }
  state.shoppers.set(userId, shopper)
  saveShoppers()
  listen(shopper)
  renderShoppers()
}

function removeShopper(shopper) {
  shopper.source?.close()
  clearTimeout(shopper.reconnect)
  state.shoppers.delete(shopper.userId)
  saveShoppers()
  renderShoppers()
}

/**
 * Opens the user's stream, replaying from the last notification seen (all of
 * them the first time). EventSource reconnects by itself with `Last-Event-ID`;
 * when the server refuses it (the token expired), a fresh token is minted.
 * Whatever happens, a notification already shown is never shown twice.
 */
function listen(shopper) {
  const lastSeen = shopper.items.length === 0 ? 0 : shopper.items[shopper.items.length - 1].id
  const current = () => state.shoppers.get(shopper.userId) === shopper
  shopper.source = openStream(
    `/users/${shopper.userId}/notifications/stream?access_token=${encodeURIComponent(shopper.token)}&lastEventId=${lastSeen}`,
    {
      events: { restock: (event) => receive(shopper, event) },
      onOpen: () => setConnection(shopper, "live"),
      onRetry: () => setConnection(shopper, "reconnecting"),
      onGone: () => {
        setConnection(shopper, "reconnecting")
        shopper.reconnect = setTimeout(() => {
          if (!current()) return
          api("POST", `/admin/users/${shopper.userId}/token`)
            .then(({ token }) => {
              shopper.token = token
            })
            .catch(() => undefined)
            .finally(() => current() && listen(shopper))
        }, 2000)
      }
    }
  )
}

function receive(shopper, event) {
  const id = Number(event.lastEventId)
  if (shopper.seen.has(id)) return
  shopper.seen.add(id)
  const notification = { id, ...JSON.parse(event.data) }
  const at = shopper.items.findIndex((item) => item.id > id)
  if (at === -1) shopper.items.push(notification)
  else shopper.items.splice(at, 0, notification)
  renderFeed(shopper)
}

function setConnection(shopper, status) {
  shopper.status = status
  const badge = shopper.element?.querySelector(".connection")
  if (badge) {
    badge.textContent = status
    badge.className = `connection ${status}`
  }
}

async function subscribe(shopper, subscribed) {
  const productId = state.product.id
  await api(subscribed ? "PUT" : "DELETE", `/products/${productId}/subscriptions/${shopper.userId}`, {
    token: shopper.token
  })
  if (subscribed) shopper.subscriptions.add(productId)
  else shopper.subscriptions.delete(productId)
  saveShoppers()
  renderShoppers()
  await refreshProduct()
}

function renderShoppers() {
  const list = $("shopper-list")
  list.replaceChildren(...[...state.shoppers.values()].map((shopper) => {
    shopper.element = shopperCard(shopper)
    return shopper.element
  }))
  for (const shopper of state.shoppers.values()) renderFeed(shopper)
}

function shopperCard(shopper) {
  const product = state.product
  const subscribed = product !== null && shopper.subscriptions.has(product.id)
  const subscriptions = [...shopper.subscriptions].sort((a, b) => a - b).map((id) => `#${id}`).join(", ")
  return h(
    "li",
    { class: "shopper", "aria-label": `Shopper ${shopper.userId}` },
    h(
      "div",
      { class: "shopper-head" },
      h("strong", {}, `User ${shopper.userId}`),
      h("span", { class: `connection ${shopper.status}` }, shopper.status),
      h("button", { type: "button", class: "quiet small", onclick: () => removeShopper(shopper) }, "Remove")
    ),
    h(
      "div",
      { class: "row" },
      product === null
        ? h("span", { class: "muted small" }, "Open a product to subscribe.")
        : h(
          "button",
          { type: "button", class: subscribed ? "quiet" : undefined, onclick: () => attempt(() => subscribe(shopper, !subscribed)) },
          subscribed ? `Unsubscribe from #${product.id}` : `Subscribe to #${product.id}`
        ),
      h("span", { class: "muted small" }, subscriptions === "" ? "no subscriptions" : `subscribed: ${subscriptions}`)
    ),
    h("ol", { class: "feed", "aria-label": `Notifications of user ${shopper.userId}` })
  )
}

function renderFeed(shopper) {
  const feed = shopper.element?.querySelector(".feed")
  if (!feed) return
  feed.replaceChildren(...shopper.items.map((item) =>
    h(
      "li",
      {},
      h("strong", {}, item.productName),
      ` is back: round #${item.restockRound}`,
      h("span", { class: "muted" }, ` ${time(item.sentAt)}`)
    )
  ))
  if (shopper.items.length === 0) feed.replaceChildren(h("li", { class: "muted" }, "No notification yet."))
  feed.scrollTop = feed.scrollHeight
}

// ---------------------------------------------------------------------------
// Wiring

function onSubmit(id, action) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault()
    attempt(() => action(event.currentTarget))
  })
}

onSubmit("sign-in-form", () => signIn($("admin-token").value.trim()))
onSubmit("product-form", saveProduct)
onSubmit("stock-form", setStock)
onSubmit("restock-form", restock)
onSubmit("policy-form", savePolicy)
$("policy-form").addEventListener("input", (event) => {
  event.currentTarget.dataset.editing = "true"
})
onSubmit("shopper-form", async (form) => {
  await addShopper(formNumber(form, "userId"))
  form.reset()
})
$("sign-out").addEventListener("click", () => signOut())
$("products-next").addEventListener("click", () => attempt(() => loadProducts(state.page.nextAfterId)))
$("products-first").addEventListener("click", () => attempt(() => loadProducts(null)))
$("products-refresh").addEventListener("click", () => attempt(refreshAll))
$("banner-resume").addEventListener("click", () => attempt(resume))
$("recipients-more").addEventListener("click", () =>
  attempt(() => showRecipients(state.product.recipients.restockRound, state.product.recipients.nextAfterId)))
for (const button of document.querySelectorAll("[data-delta]")) {
  button.addEventListener("click", () => attempt(() => adjustStock(Number(button.dataset.delta))))
}

// Subscribers and stock also change through the API: refresh while the tab is in view.
setInterval(() => {
  if (state.token !== null && document.visibilityState === "visible") refreshAll().catch(() => undefined)
}, 10_000)

if (state.token === null) signOut()
else signIn(state.token)
