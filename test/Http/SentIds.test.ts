/**
 * What a reconnecting SSE client counts as already sent: the ids up to its
 * `Last-Event-ID`, and the newest ids of its replay, in bounded memory.
 */
import { describe, expect, it } from "@effect/vitest"
import { SentIds } from "../../src/Http/Users/DeliveryStream.js"

describe("SentIds", () => {
  it("everything up to Last-Event-ID is sent; later ids are not", () => {
    const sent = new SentIds(10, 4)
    expect(sent.has(1)).toBe(true)
    expect(sent.has(10)).toBe(true)
    expect(sent.has(11)).toBe(false)
  })

  it("a replayed id is sent; a late commit between replayed ids is not", () => {
    const sent = new SentIds(10, 4)
    for (const id of [11, 12, 14]) sent.add(id)
    expect(sent.has(12)).toBe(true)
    expect(sent.has(14)).toBe(true)
    // 13 committed after the replay read past it: the live side must deliver it.
    expect(sent.has(13)).toBe(false)
    expect(sent.has(15)).toBe(false)
  })

  it("holds at most `capacity` ids: older ones fold into the floor", () => {
    const sent = new SentIds(0, 3)
    for (const id of [1, 2, 3, 5, 6, 7]) sent.add(id)
    // 1, 2, 3 were evicted: everything up to 3 counts as sent; 4 was never replayed.
    expect([1, 2, 3, 4].map((id) => sent.has(id))).toEqual([true, true, true, false])
    expect([5, 6, 7, 8].map((id) => sent.has(id))).toEqual([true, true, true, false])
  })

  it("live only (no Last-Event-ID): nothing counts as sent", () => {
    const sent = new SentIds(0, 1000)
    expect(sent.has(1)).toBe(false)
  })
})
