import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Fiber, Option, TestClock } from "effect"
import { makeUnrecordedWindow } from "../../src/Dispatch/Window.js"

/** `linger` is still waiting once `pending` has passed, and over once `rest` more has. */
const endsAfter = (linger: Fiber.Fiber<void>, pending: Duration.DurationInput, rest: Duration.DurationInput) =>
  Effect.gen(function*() {
    yield* TestClock.adjust(pending)
    expect(Option.isNone(yield* Fiber.poll(linger))).toBe(true)
    yield* TestClock.adjust(rest)
    yield* Fiber.join(linger)
  })

describe("the window of unrecorded sends", () => {
  it.scoped("a full window makes the next take wait until a slot is given back", () =>
    Effect.gen(function*() {
      const window = yield* makeUnrecordedWindow(2)
      yield* window.take
      yield* window.take
      const third = yield* Effect.fork(window.take)
      yield* Effect.yieldNow()
      expect(Option.isNone(yield* Fiber.poll(third))).toBe(true)
      yield* window.release(1)
      yield* Fiber.join(third)
      const drained = yield* Effect.fork(window.drain)
      yield* Effect.yieldNow()
      expect(Option.isNone(yield* Fiber.poll(drained))).toBe(true)
      yield* window.release(2)
      yield* Fiber.join(drained)
    }))

  it.scoped("a writer lingers the whole time while the window has room", () =>
    Effect.gen(function*() {
      const window = yield* makeUnrecordedWindow(8)
      yield* window.take
      const linger = yield* Effect.fork(window.lingerUnlessCrowded("10 millis"))
      yield* endsAfter(linger, "9 millis", "1 millis")
    }))

  it.scoped("no lingering while the window is three quarters full, and a linger ends once it becomes so", () =>
    Effect.gen(function*() {
      const window = yield* makeUnrecordedWindow(8)
      for (let i = 0; i < 5; i++) yield* window.take
      const linger = yield* Effect.fork(window.lingerUnlessCrowded("10 millis"))
      yield* Effect.yieldNow()
      expect(Option.isNone(yield* Fiber.poll(linger))).toBe(true)
      // The sixth slot of eight: crowded. The linger ends without any time passing.
      yield* window.take
      yield* Fiber.join(linger)
      // Still crowded: the next linger does not wait at all.
      yield* window.lingerUnlessCrowded("10 millis")
      // Back under three quarters: lingering again.
      yield* window.release(3)
      const again = yield* Effect.fork(window.lingerUnlessCrowded("10 millis"))
      yield* Effect.yieldNow()
      yield* endsAfter(again, "9 millis", "1 millis")
    }))

  it.scoped("a linger cut short by crowding does not shorten or lengthen the next one", () =>
    Effect.gen(function*() {
      const window = yield* makeUnrecordedWindow(8)
      for (let i = 0; i < 5; i++) yield* window.take
      const first = yield* Effect.fork(window.lingerUnlessCrowded("10 millis"))
      yield* Effect.yieldNow()
      yield* window.take
      yield* Fiber.join(first)
      yield* window.release(3)
      // 4 ms later: the next linger ends 10 ms after it began, not when the first would have.
      yield* TestClock.adjust("4 millis")
      const next = yield* Effect.fork(window.lingerUnlessCrowded("10 millis"))
      yield* Effect.yieldNow()
      // Still waiting past the first one's end (6 ms from here), over at its own.
      yield* endsAfter(next, "9 millis", "1 millis")
    }))

  it.scoped("tryTake takes a free slot at once, takes nothing from a full window, and an interrupted take leaves no slot taken", () =>
    Effect.gen(function*() {
      const window = yield* makeUnrecordedWindow(2)
      expect(window.tryTake()).toBe(true)
      expect(window.tryTake()).toBe(true)
      expect(window.tryTake()).toBe(false)
      const waiting = yield* Effect.fork(window.take)
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(waiting)
      yield* window.release(1)
      // The slot given back is free: the interrupted take did not count it.
      expect(window.tryTake()).toBe(true)
      expect(window.tryTake()).toBe(false)
      yield* window.release(2)
      yield* window.drain
      expect(window.tryTake()).toBe(false)
    }))

  it.scoped("a linger of a fractional millisecond, at a fractional virtual time, lasts exactly that", () =>
    Effect.gen(function*() {
      const window = yield* makeUnrecordedWindow(8)
      // 0.1 + 0.2: a virtual time of 0.30000000000000004 ms, which no nanosecond count equals.
      yield* TestClock.adjust("0.1 millis")
      yield* TestClock.adjust("0.2 millis")
      const linger = yield* Effect.fork(window.lingerUnlessCrowded("12.5 millis"))
      yield* Effect.yieldNow()
      yield* endsAfter(linger, "12.4 millis", "0.1 millis")
    }))
})
