import { describe, expect, it } from "vitest"
import { makePrefixTracker } from "../../src/Dispatch/Prefix.js"

describe("the contiguous successful prefix", () => {
  it("advances only over turns settled without a gap, whatever order they settle in", () => {
    const prefix = makePrefixTracker<string>()
    prefix.settle(1, true, "b")
    prefix.settle(2, true, "c")
    expect(prefix.advanced()).toBeUndefined()
    prefix.settle(0, true, "a")
    expect(prefix.advanced()).toBe("c")
    expect(prefix.advanced()).toBeUndefined()
    prefix.settle(3, true, "d")
    expect(prefix.advanced()).toBe("d")
  })

  it("ends for good at the first failed turn, even if turns after it succeed", () => {
    const prefix = makePrefixTracker<string>()
    prefix.settle(0, true, "a")
    prefix.settle(2, true, "c")
    prefix.settle(1, false, "b")
    expect(prefix.advanced()).toBe("a")
    prefix.settle(3, true, "d")
    expect(prefix.advanced()).toBeUndefined()
  })

  it("a failure as the very first turn leaves no prefix at all", () => {
    const prefix = makePrefixTracker<string>()
    prefix.settle(0, false, "a")
    prefix.settle(1, true, "b")
    expect(prefix.advanced()).toBeUndefined()
  })
})
