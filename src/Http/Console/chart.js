// The round chart of the console: plain SVG, drawn from the round's progress
// events. Two panels over the round's time (seconds since it started, by the
// server's clock: each event's updatedAt − startedAt): sends per second with
// the rate limit as a line, and the sends so far against the subscribers.
// Every point is an element carrying its figures (data-*), so what is drawn
// can be read back.

const svgNs = "http://www.w3.org/2000/svg"

const width = 560
const margin = { left: 44, right: 12 }
const panels = {
  rate: { top: 24, height: 120 },
  progress: { top: 196, height: 90 }
}
const height = 318

function s(tag, attributes = {}, ...children) {
  const element = document.createElementNS(svgNs, tag)
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value))
  element.append(...children)
  return element
}

/**
 * A progress point per event that moved the round: `{ t, sent }`, t in
 * seconds since the round started. Events that change nothing are left out.
 */
export function progressPoint(round) {
  const at = round.finishedAt ?? round.updatedAt
  return { t: Math.max(0, (Date.parse(at) - Date.parse(round.startedAt)) / 1000), sent: round.sentCount }
}

/**
 * Sends per second at each progress point after the first: the sends since
 * the earliest point at most a second before it, over the time between them
 * (the point just before when none is that close).
 */
export function ratePoints(points) {
  const rates = []
  let from = 0
  for (let i = 1; i < points.length; i++) {
    while (from < i - 1 && points[from].t < points[i].t - 1) from++
    const span = points[i].t - points[from].t
    if (span <= 0) continue
    rates.push({ t: points[i].t, rate: (points[i].sent - points[from].sent) / span })
  }
  return rates
}

/** A round number for an axis' top: 1, 2 or 5 times a power of ten, at least `value`. */
function niceCeiling(value) {
  if (value <= 0) return 1
  const power = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power
  return 10 * power
}

const formatNumber = (value) => new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 }).format(value)

function axis(group, { top, height: panelHeight }, yMax, x, xMax, label) {
  const bottom = top + panelHeight
  for (const fraction of [0, 0.5, 1]) {
    const y = bottom - fraction * panelHeight
    group.append(
      s("line", { class: "grid", x1: margin.left, x2: width - margin.right, y1: y, y2: y }),
      s("text", { class: "tick", x: margin.left - 6, y: y + 4, "text-anchor": "end" }, formatNumber(fraction * yMax))
    )
  }
  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const seconds = fraction * xMax
    group.append(s("text", { class: "tick", x: x(seconds), y: bottom + 14, "text-anchor": "middle" }, `${formatNumber(seconds)} s`))
  }
  group.append(s("text", { class: "panel-title", x: margin.left, y: top - 8 }, label))
}

/**
 * Draws the chart of one round into `svg` (replacing what was there):
 * `points` its progress points, `limit` the sends-per-second limit (or null
 * when unknown), `total` the subscribers the round goes to.
 */
export function drawRoundChart(svg, { points, limit, total, restockRound }) {
  const rates = ratePoints(points)
  const xMax = Math.max(1, ...points.map((p) => p.t))
  const rateMax = niceCeiling(Math.max(limit ?? 0, ...rates.map((r) => r.rate)) * 1.15)
  const sentMax = Math.max(1, total, ...points.map((p) => p.sent))
  const x = (t) => margin.left + (t / xMax) * (width - margin.left - margin.right)
  const yIn = (panel, max) => (value) => panel.top + panel.height - (value / max) * panel.height
  const yRate = yIn(panels.rate, rateMax)
  const ySent = yIn(panels.progress, sentMax)

  svg.setAttribute("viewBox", `0 0 ${width} ${height}`)
  svg.setAttribute("aria-label", `Round #${restockRound}: sends per second and progress over the round's time`)
  svg.dataset.xMax = String(xMax)
  const rate = s("g", { class: "panel rate" })
  axis(rate, panels.rate, rateMax, x, xMax, "sends per second")
  if (limit !== null) {
    rate.append(
      s("line", { class: "limit-line", "data-limit": limit, x1: margin.left, x2: width - margin.right, y1: yRate(limit), y2: yRate(limit) }),
      s("text", { class: "limit-label", x: width - margin.right, y: yRate(limit) - 5, "text-anchor": "end" }, `limit ${formatNumber(limit)}/s`)
    )
  }
  rate.append(s("polyline", { class: "rate-line", points: rates.map((r) => `${x(r.t).toFixed(1)},${yRate(r.rate).toFixed(1)}`).join(" ") }))
  for (const r of rates) rate.append(s("circle", { class: "rate-point", r: 2, cx: x(r.t).toFixed(1), cy: yRate(r.rate).toFixed(1), "data-t": r.t, "data-rate": r.rate }))

  const progress = s("g", { class: "panel progress" })
  axis(progress, panels.progress, sentMax, x, xMax, `sent, of ${formatNumber(sentMax)}`)
  progress.append(s("polyline", { class: "progress-line", points: points.map((p) => `${x(p.t).toFixed(1)},${ySent(p.sent).toFixed(1)}`).join(" ") }))
  for (const p of points) progress.append(s("circle", { class: "progress-point", r: 2, cx: x(p.t).toFixed(1), cy: ySent(p.sent).toFixed(1), "data-t": p.t, "data-sent": p.sent }))

  svg.replaceChildren(rate, progress)
}
