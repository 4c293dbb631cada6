/**
 * How the benches measure: arrival times against a limit the way the third
 * party would (a sliding one-second window), percentiles, memory, and the
 * printed tables.
 */
import { readFileSync } from "node:fs"
import { performance } from "node:perf_hooks"
import { achievedRate, maxInSlidingWindow } from "../../test/support/Rate.js"

/** Wall-clock milliseconds with sub-millisecond precision (the sender stamps arrivals the same way). */
export const now = (): number => performance.timeOrigin + performance.now()

export interface RateFigures {
  readonly n: number
  /** The most arrivals in any sliding one-second window. */
  readonly worstSecond: number
  /** How many arrivals start a one-second window holding more than the limit (0: never over). */
  readonly windowsOverLimit: number
  /** First to last arrival, in seconds. */
  readonly spanSeconds: number
  /** ((n − 1) / limit) / span: 1.0 is even spacing exactly at the limit. Equals achieved rate / limit. */
  readonly efficiency: number
  readonly achievedPerSecond: number
}

/** Arrivals (epoch ms) measured against `limit` per sliding second. */
export const rateFigures = (arrivals: ReadonlyArray<number>, limit: number): RateFigures => {
  const sorted = [...arrivals].sort((a, b) => a - b)
  let over = 0
  let end = 0
  for (let start = 0; start < sorted.length; start++) {
    while (end < sorted.length && sorted[end]! < sorted[start]! + 1000) end++
    if (end - start > limit) over++
  }
  const span = sorted.length < 2 ? Number.NaN : (sorted[sorted.length - 1]! - sorted[0]!) / 1000
  const rate = achievedRate(sorted)
  return {
    n: sorted.length,
    worstSecond: maxInSlidingWindow(sorted, 1000),
    windowsOverLimit: over,
    spanSeconds: span,
    efficiency: rate / limit,
    achievedPerSecond: rate
  }
}

/** The q-quantile (0..1) by nearest rank. */
export const quantile = (values: ReadonlyArray<number>, q: number): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank]!
}

/** Resident set size of a process now and at its peak (VmHWM), in MiB, from /proc. */
export const processMemory = (pid: number): { readonly rssMiB: number; readonly peakMiB: number } | undefined => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN)
    return { rssMiB: kib("VmRSS") / 1024, peakMiB: kib("VmHWM") / 1024 }
  } catch {
    return undefined
  }
}

/**
 * How busy the machine is (other work competes for the 2 cores): the 1-minute
 * load average and the share of the last 60 s in which some task waited for
 * a CPU (Linux PSI). Printed beside every bench, since the absolute figures
 * move with it while the ratios within one bench mostly do not.
 */
export const machineLoad = (): string => {
  const read = (path: string) => {
    try {
      return readFileSync(path, "utf8")
    } catch {
      return ""
    }
  }
  const load = read("/proc/loadavg").split(" ")[0] ?? "?"
  const waiting = /some avg10=[\d.]+ avg60=([\d.]+)/.exec(read("/proc/pressure/cpu"))?.[1]
  return `load average ${load}` + (waiting === undefined ? "" : `, CPU pressure ${waiting} % (tasks waiting for a core, last 60 s)`)
}

// ---- printing

export const fixed = (value: number, digits = 0): string => Number.isFinite(value) ? value.toFixed(digits) : "—"
export const thousands = (value: number): string => Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "—"

/** A Markdown table, so that what the bench prints can go into the README as it is. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column]!)).join(" | ")} |`
  return [line(header), `|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`, ...rows.map(line)].join("\n")
}

/** A target a bench checks: printed as met or MISSED, and counted by the runner. */
export interface Target {
  readonly what: string
  readonly met: boolean
  readonly measured: string
}

export const target = (what: string, met: boolean, measured: string): Target => ({ what, met, measured })
