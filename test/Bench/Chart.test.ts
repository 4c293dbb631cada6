/**
 * The benches' pictures: the sliding-second series drawn for the rate bench
 * agrees with the figure its table prints (the busiest sliding second), and a
 * chart renders to an SVG document through Vega with one line per series and
 * the limit's rule.
 */
import { describe, expect, it } from "vitest"
import * as Chart from "../../bench/support/Chart.js"
import { rateFigures } from "../../bench/support/Measure.js"

/** Arrivals at `perSecond`, each late by up to `jitterMs`, with a burst of `burst` extra ones at `burstAtMs`. */
const arrivals = (count: number, perSecond: number, jitterMs: number, burst = 0, burstAtMs = 3_000) => {
  let seed = 7
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647)
  const times = Array.from({ length: count }, (_, i) => 1_000_000 + (i * 1000) / perSecond + random() * jitterMs)
  for (let i = 0; i < burst; i++) times.push(1_000_000 + burstAtMs + random() * 50)
  return times
}

describe("the bench charts", () => {
  it("draw arrivals per sliding second whose peak is the table's busiest second", () => {
    const runs = [
      arrivals(5_000, 492, 5),
      arrivals(3_000, 500, 30),
      arrivals(3_000, 480, 10, 80),
      // Bursts in the first second and in the last whole one: the edges count too.
      arrivals(3_000, 480, 10, 90, 0),
      arrivals(3_000, 480, 10, 90, 5_200)
    ]
    for (const times of runs) {
      const points = Chart.slidingSecond(times)
      const figures = rateFigures(times, 500)
      expect(Math.max(...points.map((p) => p.arrivals))).toBe(figures.worstSecond)
      // Seconds inside the run, in time order.
      expect(points[0]!.seconds).toBe(0)
      expect(points.at(-1)!.seconds).toBeLessThanOrEqual((Math.max(...times) - Math.min(...times)) / 1000 - 1)
      expect(points.map((p) => p.seconds)).toEqual([...points.map((p) => p.seconds)].sort((a, b) => a - b))
    }
  })

  it("renders a chart to SVG through Vega: a line per series and the limit", async () => {
    const series = { restock: arrivals(2_000, 492, 5), other: arrivals(2_000, 520, 40) }
    const svg = await Chart.render({
      file: "test.svg",
      title: "test",
      spec: {
        ...Chart.base,
        layer: [
          {
            data: {
              values: Object.entries(series).flatMap(([approach, times]) =>
                Chart.slidingSecond(times).map((point) => ({ approach, ...point }))
              )
            },
            mark: "line",
            encoding: {
              x: { field: "seconds", type: "quantitative" },
              y: { field: "arrivals", type: "quantitative" },
              color: { field: "approach", type: "nominal" }
            }
          },
          { data: { values: [{ limit: 500 }] }, mark: "rule", encoding: { y: { field: "limit", type: "quantitative" } } }
        ]
      }
    })
    expect(svg).toMatch(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/)
    // One line per series, named in the legend, and the limit's rule.
    expect(svg.match(/aria-roledescription="line mark"/g)).toHaveLength(2)
    expect(svg).toContain(">restock<")
    expect(svg).toContain(">other<")
    expect(svg.match(/aria-roledescription="rule mark"/g)).toHaveLength(1)
  })
})
