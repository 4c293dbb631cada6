/** What one bench is and what it hands back to the runner. */
import type { Duration, Effect, Scope } from "effect"
import type { Chart } from "./Chart.js"
import type { Target } from "./Measure.js"

export interface BenchReport {
  /** Printed as they are: Markdown tables and notes. */
  readonly sections: ReadonlyArray<string>
  readonly targets: ReadonlyArray<Target>
  /** Drawn from the same measurements, written to `bench/charts/` beside the tables. */
  readonly charts?: ReadonlyArray<Chart> | undefined
}

export interface Bench {
  readonly name: string
  readonly title: string
  /** The bench is interrupted (and cleans up) if it runs longer. */
  readonly timeout: Duration.DurationInput
  readonly run: Effect.Effect<BenchReport, unknown, Scope.Scope>
}
