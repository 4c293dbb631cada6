/**
 * The benches' pictures: a Vega-Lite spec per chart, compiled to Vega and
 * rendered to SVG in this process (Vega's headless view, `renderer: "none"`),
 * written to `bench/charts/` beside the tables. The data are the bench's own
 * measurements; Vega draws the axes, lines and legend.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as vega from "vega"
import { compile, type TopLevelSpec } from "vega-lite"

export interface Chart {
  /** File name under `bench/charts/`, e.g. `rate.svg`. */
  readonly file: string
  /** Alt text in the README, and the printed line. */
  readonly title: string
  readonly spec: TopLevelSpec
}

export const chartsDirectory = fileURLToPath(new URL("../charts/", import.meta.url))

/** The chart as an SVG document. */
export const render = async (chart: Chart): Promise<string> => {
  const view = new vega.View(vega.parse(compile(chart.spec).spec), { renderer: "none" })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

/** Renders the chart into `bench/charts/`; answers the path relative to `bench/`. */
export const write = async (chart: Chart): Promise<string> => {
  mkdirSync(chartsDirectory, { recursive: true })
  writeFileSync(join(chartsDirectory, chart.file), await render(chart))
  return `charts/${chart.file}`
}

/** Common look: a white background, a readable width, the font every SVG viewer has. */
export const base = {
  $schema: "https://vega.github.io/schema/vega-lite/v6.json",
  background: "white",
  width: 720,
  height: 300,
  config: {
    font: "sans-serif",
    axis: { grid: true, gridOpacity: 0.5 },
    legend: { orient: "bottom", direction: "vertical", labelLimit: 600 },
    title: { anchor: "start", subtitleColor: "#555" }
  }
} as const

/**
 * Arrivals per sliding second: for each arrival, how many arrived in the
 * second that starts there (the windows the rate bench's table counts), at
 * that second's start; seconds that reach past the last arrival are left out.
 * Thinned to the largest count per `bucketMs`, so the peaks stay.
 */
export const slidingSecond = (arrivals: ReadonlyArray<number>, bucketMs = 20) => {
  const sorted = [...arrivals].sort((a, b) => a - b)
  const points: Array<{ readonly seconds: number; readonly arrivals: number }> = []
  if (sorted.length === 0) return points
  const first = sorted[0]!
  const last = sorted[sorted.length - 1]!
  let end = 0
  let bucket = -1
  for (let start = 0; start < sorted.length && sorted[start]! + 1000 <= last; start++) {
    const at = sorted[start]!
    while (end < sorted.length && sorted[end]! < at + 1000) end++
    const count = end - start
    const index = Math.floor((at - first) / bucketMs)
    if (index === bucket) {
      const previous = points[points.length - 1]!
      if (count > previous.arrivals) points[points.length - 1] = { seconds: previous.seconds, arrivals: count }
    } else {
      bucket = index
      points.push({ seconds: (index * bucketMs) / 1000, arrivals: count })
    }
  }
  return points
}
