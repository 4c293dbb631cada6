/** What one bench is and what it hands back to the runner. */
import type { Duration, Effect, Scope } from "effect"
import type { Target } from "./Measure.js"

export interface BenchReport {
  /** Printed as they are: Markdown tables and notes. */
  readonly sections: ReadonlyArray<string>
  readonly targets: ReadonlyArray<Target>
}

export interface Bench {
  readonly name: string
  readonly title: string
  /** The bench is interrupted (and cleans up) if it runs longer. */
  readonly timeout: Duration.DurationInput
  readonly run: Effect.Effect<BenchReport, unknown, Scope.Scope>
}
