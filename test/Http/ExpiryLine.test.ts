import { describe, expect, it } from "@effect/vitest"
import { ExpiryLine } from "../../src/Http/ExpiryLine.js"

describe("ExpiryLine", () => {
  it("pops expiries earliest first, whatever the order they came in, with pushes between pops", () => {
    const line = new ExpiryLine()
    let seed = 7
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31
    const pushed: Array<number> = []
    const popped: Array<number> = []
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 20; i++) {
        const at = Math.floor(random() * 1_000)
        pushed.push(at)
        line.push({ at, channel: undefined })
      }
      for (let i = 0; i < 15; i++) popped.push(line.pop()!.at)
    }
    while (line.earliest !== undefined) popped.push(line.pop()!.at)
    expect(popped).toHaveLength(pushed.length)
    expect([...popped].sort((a, b) => a - b)).toEqual([...pushed].sort((a, b) => a - b))
    // Within each run of pops, earliest first.
    for (let start = 0; start < 50 * 15; start += 15) {
      const run = popped.slice(start, start + 15)
      expect(run).toEqual([...run].sort((a, b) => a - b))
    }
    expect(line.pop()).toBeUndefined()
  })
})
