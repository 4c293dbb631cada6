/**
 * One timer for many timeouts (`Deadlines`), in virtual time: each operation
 * expires exactly at its deadline unless it settled before, in whatever order
 * operations settle, and one that settles is never expired later.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import * as Deadlines from "../../src/Notifier/Deadlines.js"

interface Operation {
  readonly name: string
  readonly deadline: number
  settled: boolean
  expire(): void
}

describe("Deadlines", () => {
  it.scoped("expires each unsettled operation exactly at its deadline, and none that settled", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make
      const expired: Array<string> = []
      const start = (name: string, timeoutMillis: number): Operation => {
        const operation: Operation = {
          name,
          deadline: deadlines.now() + timeoutMillis,
          settled: false,
          expire: () => {
            operation.settled = true
            expired.push(`${name}@${deadlines.now()}`)
          }
        }
        deadlines.track(operation)
        return operation
      }
      const settle = (operation: Operation) => {
        operation.settled = true
        deadlines.settled()
      }

      const a = start("a", 1000)
      yield* TestClock.adjust("100 millis")
      const b = start("b", 1000)
      const c = start("c", 1000)
      yield* TestClock.adjust("100 millis")
      start("d", 1000)
      // Settled out of order: the one in front still holds its place until it settles too.
      settle(c)
      yield* TestClock.adjust("799 millis")
      expect(expired).toEqual([])
      settle(a)
      yield* TestClock.adjust("1 millis")
      expect(expired).toEqual([])
      yield* TestClock.adjust("100 millis")
      expect(expired).toEqual(["b@1100"])
      yield* TestClock.adjust("99 millis")
      expect(expired).toEqual(["b@1100"])
      yield* TestClock.adjust("1 millis")
      expect(expired).toEqual(["b@1100", "d@1200"])
      expect(b.settled).toBe(true)

      // After an idle spell with nothing tracked, a new operation is watched again.
      yield* TestClock.adjust("10 seconds")
      start("e", 500)
      yield* TestClock.adjust("499 millis")
      expect(expired).toHaveLength(2)
      yield* TestClock.adjust("1 millis")
      expect(expired).toEqual(["b@1100", "d@1200", "e@11700"])
    }))

  it.scoped("holds hundreds of operations over twice their timeout, each settling in turn, without expiring any", () =>
    Effect.gen(function*() {
      const deadlines = yield* Deadlines.make
      let expiredCount = 0
      for (let i = 0; i < 400; i++) {
        const operation = { deadline: deadlines.now() + 10_000, settled: false, expire: () => expiredCount++ }
        deadlines.track(operation)
        yield* TestClock.adjust("50 millis")
        operation.settled = true
        deadlines.settled()
      }
      yield* TestClock.adjust("20 seconds")
      expect(expiredCount).toBe(0)
    }))
})
