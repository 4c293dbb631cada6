/** One restock round through the real `Restock` service, timed from trigger to terminal status. */
import { Effect } from "effect"
import { Restock } from "../../src/Dispatch/Restock.js"
import { ProductId } from "../../src/Domain/Ids.js"
import type { Round } from "../../src/Domain/Round.js"
import { now } from "./Measure.js"

export interface TimedRound {
  readonly round: Round
  /** Trigger to terminal status (written after every record), in seconds. */
  readonly seconds: number
  /** CPU time this process spent meanwhile (user + system), in milliseconds. */
  readonly cpuMs: number
}

export const timedRound = (productId: number) =>
  Effect.gen(function*() {
    const restock = yield* Restock
    const cpu = process.cpuUsage()
    const started = now()
    const opened = yield* restock.trigger(ProductId.make(productId))
    const round = yield* restock.awaitRound(opened.productId, opened.restockRound)
    const seconds = (now() - started) / 1000
    const used = process.cpuUsage(cpu)
    return { round, seconds, cpuMs: (used.user + used.system) / 1000 } satisfies TimedRound
  })
