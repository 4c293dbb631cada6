/**
 * The send window's arithmetic (SPEC §3.12): when it opens and closes, in a
 * zone's local time, across midnight and across both daylight-saving changes.
 * (The dispatch waiting on it in virtual time is in `Restock.test.ts`.)
 */
import { Either } from "effect"
import { describe, expect, it } from "vitest"
import * as SendWindow from "../../src/Dispatch/SendWindow.js"

const windowOf = (window: string, zone: string) => {
  const parsed = SendWindow.parse(window, zone)
  if (Either.isLeft(parsed)) throw new Error(parsed.left)
  return parsed.right
}
const at = (iso: string) => Date.parse(iso)
const iso = (instant: number) => new Date(instant).toISOString()

describe("SendWindow.parse", () => {
  it("reads HH:MM-HH:MM in an IANA zone", () => {
    const window = windowOf("08:30-21:15", "Europe/Berlin")
    expect([window.startMinute, window.endMinute, window.timeZone]).toEqual([510, 1275, "Europe/Berlin"])
  })

  it.each([
    ["8:00-21:00", /HH:MM-HH:MM/],
    ["08:00-24:00", /HH:MM-HH:MM/],
    ["08:00–21:00", /HH:MM-HH:MM/],
    ["08:00-21:00-22:00", /HH:MM-HH:MM/],
    ["08:60-21:00", /HH:MM-HH:MM/],
    ["", /HH:MM-HH:MM/],
    ["08:00-08:00", /different times/]
  ])("rejects %j", (raw, why) => {
    const parsed = SendWindow.parse(raw, "UTC")
    expect(Either.isLeft(parsed)).toBe(true)
    if (Either.isLeft(parsed)) expect(parsed.left).toMatch(why)
  })

  it("rejects a zone the platform does not know", () => {
    const parsed = SendWindow.parse("08:00-21:00", "Europe/Atlantis")
    expect(Either.isLeft(parsed) && parsed.left).toMatch(/IANA time zone.*Europe\/Atlantis/)
  })
})

describe("a window within one day (08:00-21:00 UTC)", () => {
  const window = windowOf("08:00-21:00", "UTC")

  it("is open from its start, inclusive, to its end, exclusive", () => {
    expect(SendWindow.isOpen(window, at("2026-06-01T07:59:59.999Z"))).toBe(false)
    expect(SendWindow.isOpen(window, at("2026-06-01T08:00:00.000Z"))).toBe(true)
    expect(SendWindow.isOpen(window, at("2026-06-01T20:59:59.999Z"))).toBe(true)
    expect(SendWindow.isOpen(window, at("2026-06-01T21:00:00.000Z"))).toBe(false)
  })

  it("opens next at the start of the same or the next day, and closes at its end", () => {
    expect(iso(SendWindow.nextOpening(window, at("2026-06-01T03:00:00Z")))).toBe("2026-06-01T08:00:00.000Z")
    expect(iso(SendWindow.nextOpening(window, at("2026-06-01T21:00:00Z")))).toBe("2026-06-02T08:00:00.000Z")
    expect(iso(SendWindow.nextOpening(window, at("2026-06-01T12:34:56.789Z")))).toBe("2026-06-01T12:34:56.789Z")
    expect(iso(SendWindow.nextClosing(window, at("2026-06-01T12:34:56.789Z")))).toBe("2026-06-01T21:00:00.000Z")
    expect(iso(SendWindow.nextClosing(window, at("2026-06-01T22:00:00Z")))).toBe("2026-06-01T22:00:00.000Z")
  })
})

describe("a window crossing midnight (21:00-08:00 UTC)", () => {
  const window = windowOf("21:00-08:00", "UTC")

  it("is open late in the evening and early in the morning, closed in the day", () => {
    expect(SendWindow.isOpen(window, at("2026-06-01T23:30:00Z"))).toBe(true)
    expect(SendWindow.isOpen(window, at("2026-06-02T00:00:00Z"))).toBe(true)
    expect(SendWindow.isOpen(window, at("2026-06-02T07:59:59.999Z"))).toBe(true)
    expect(SendWindow.isOpen(window, at("2026-06-02T08:00:00Z"))).toBe(false)
    expect(SendWindow.isOpen(window, at("2026-06-02T20:59:59.999Z"))).toBe(false)
    expect(SendWindow.isOpen(window, at("2026-06-02T21:00:00Z"))).toBe(true)
  })

  it("closes the next morning and opens that evening", () => {
    expect(iso(SendWindow.nextClosing(window, at("2026-06-01T22:00:00Z")))).toBe("2026-06-02T08:00:00.000Z")
    expect(iso(SendWindow.nextOpening(window, at("2026-06-02T08:00:00Z")))).toBe("2026-06-02T21:00:00.000Z")
  })
})

describe("Europe/Berlin, on the days its clocks change (2026-03-29 forward, 2026-10-25 back)", () => {
  it("a daytime window: the night before the change opens at 08:00 local, an hour earlier in UTC", () => {
    const window = windowOf("08:00-21:00", "Europe/Berlin")
    // 21:30 CET on the 28th; the next 08:00 is CEST (UTC+2).
    expect(iso(SendWindow.nextOpening(window, at("2026-03-28T20:30:00Z")))).toBe("2026-03-29T06:00:00.000Z")
    expect(iso(SendWindow.nextClosing(window, at("2026-03-29T06:00:00Z")))).toBe("2026-03-29T19:00:00.000Z")
    // Back to CET (UTC+1) in October.
    expect(iso(SendWindow.nextOpening(window, at("2026-10-24T19:30:00Z")))).toBe("2026-10-25T07:00:00.000Z")
    expect(iso(SendWindow.nextClosing(window, at("2026-10-25T07:00:00Z")))).toBe("2026-10-25T20:00:00.000Z")
  })

  it("clocks forward over the opening (02:30 does not exist that night): the window opens at the jump, 03:00 CEST", () => {
    const window = windowOf("02:30-05:00", "Europe/Berlin")
    expect(iso(SendWindow.nextOpening(window, at("2026-03-28T23:00:00Z")))).toBe("2026-03-29T01:00:00.000Z")
    expect(SendWindow.isOpen(window, at("2026-03-29T00:59:59.999Z"))).toBe(false)
    expect(iso(SendWindow.nextClosing(window, at("2026-03-29T01:00:00Z")))).toBe("2026-03-29T03:00:00.000Z")
  })

  it("clocks back over the closing: the repeated half hour (02:00-02:30 CET) is inside the window again", () => {
    const window = windowOf("01:00-02:30", "Europe/Berlin")
    expect(iso(SendWindow.nextOpening(window, at("2026-10-24T22:00:00Z")))).toBe("2026-10-24T23:00:00.000Z")
    expect(iso(SendWindow.nextClosing(window, at("2026-10-24T23:00:00Z")))).toBe("2026-10-25T00:30:00.000Z")
    expect(iso(SendWindow.nextOpening(window, at("2026-10-25T00:30:00Z")))).toBe("2026-10-25T01:00:00.000Z")
    expect(iso(SendWindow.nextClosing(window, at("2026-10-25T01:00:00Z")))).toBe("2026-10-25T01:30:00.000Z")
    expect(iso(SendWindow.nextOpening(window, at("2026-10-25T01:30:00Z")))).toBe("2026-10-26T00:00:00.000Z")
  })

  it("a night window across the October change is an hour longer: 22:00 CEST to 06:00 CET", () => {
    const window = windowOf("22:00-06:00", "Europe/Berlin")
    expect(iso(SendWindow.nextOpening(window, at("2026-10-24T12:00:00Z")))).toBe("2026-10-24T20:00:00.000Z")
    expect(iso(SendWindow.nextClosing(window, at("2026-10-24T20:00:00Z")))).toBe("2026-10-25T05:00:00.000Z")
  })

  it("a night window across the March change is an hour shorter: 22:00 CET to 06:00 CEST", () => {
    const window = windowOf("22:00-06:00", "Europe/Berlin")
    expect(iso(SendWindow.nextOpening(window, at("2026-03-28T12:00:00Z")))).toBe("2026-03-28T21:00:00.000Z")
    expect(iso(SendWindow.nextClosing(window, at("2026-03-28T21:00:00Z")))).toBe("2026-03-29T04:00:00.000Z")
  })
})

describe("a zone far from UTC (Pacific/Auckland, UTC+13 in its summer)", () => {
  it("opens at its local 09:00, the previous day in UTC", () => {
    const window = windowOf("09:00-17:00", "Pacific/Auckland")
    expect(iso(SendWindow.nextOpening(window, at("2026-12-01T12:00:00Z")))).toBe("2026-12-01T20:00:00.000Z")
  })
})
