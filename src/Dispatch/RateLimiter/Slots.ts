/**
 * The slot engine of both `RateLimiter` adapters: starts spaced one
 * `spacingMicros` apart, claimed a few slots at a time (from this process or
 * from Redis: the adapter's `reserve`), handed out in order, and a fiber that
 * woke too late for its slot made to take another rather than start in a
 * bunch after a stall.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { rateLimitSlotsDropped } from "../../Observability/Metrics.js"

/**
 * The spacing between two starts, in microseconds. The margin absorbs the
 * jitter between when a send starts here and when it arrives at the sender.
 */
export const spacingMicros = (limitPerSecond: number, margin: number): number =>
  Math.ceil(1_000_000 / (limitPerSecond * (1 - margin)))

/**
 * 1.5 %: 492.5/s at the default limit, tolerating 15 ms of arrival jitter per second.
 * (1 % was measured too little: a receiver whose event loop stalled 10 ms bunched
 * its arrival stamps into 201 in one second at a limit of 200.)
 */
export const defaultMargin = 0.015

/**
 * How late after its slot a start may be taken, in microseconds: half of
 * what the margin leaves over one second (≈ 5 ms at the default margin), the
 * other half being left for the way to the receiver.
 */
export const latenessToleranceMicros = (limitPerSecond: number, spacing: number): number =>
  Math.max(0, Math.floor((limitPerSecond * spacing - 1_000_000) / 2))

/** Reservations one `acquire` makes at most before it starts however late it woke, when it is the limit's sole user. */
export const maxReservationsPerAcquire = 3

/**
 * Decides, for a fiber that woke for its slot, whether it may start now or
 * must give the slot up and reserve another.
 *
 * Fibers whose slots passed during an event-loop stall all wake together
 * after it, and would start in a bunch with the on-time starts after them:
 * more than the limit in one sliding second. Starts within the tolerance of
 * their slots never add up to that, and neither does one start later than
 * that per second (the margin leaves room for exactly one); any other late
 * fiber reserves again. A slot given up is wasted, so a fiber that is merely
 * late on its own costs nothing.
 */
export const makeLateStartGuard = (
  limitPerSecond: number,
  spacing: number,
  options: {
    /**
     * Whether this process may take the one late start per second the margin has
     * room for. Only when it is the limit's only user: with several processes
     * sharing one limit, each taking its one would add up past the margin.
     */
    readonly soleUser: boolean
  }
) => {
  const tolerance = latenessToleranceMicros(limitPerSecond, spacing)
  let lastLateStart = Number.NEGATIVE_INFINITY
  return (slotMicros: number, nowMicros: number, reservation: number): boolean => {
    if (nowMicros - slotMicros <= tolerance) return true
    // Sharing the limit, a late fiber always reserves again: never over the limit, at the
    // cost of slots when the process is starved of CPU. Alone, it may give up after a few.
    if (!options.soleUser) return false
    if (reservation >= maxReservationsPerAcquire) return true
    if (nowMicros - lastLateStart < 1_000_000) return false
    lastLateStart = nowMicros
    return true
  }
}

/**
 * How far ahead one reservation claims slots, in microseconds. Reserving the
 * next slots before the current one is used means a start loop that runs a
 * little behind (a timer firing a millisecond late, a slow iteration, the
 * round trip to Redis) loses no slot: the schedule is already there. It
 * also takes one Redis round trip per few starts rather than one per start.
 */
export const reservationWindowMicros = 20_000

/** The most slots one reservation claims (at very high limits, a window holds thousands). */
export const maxSlotsPerReservation = 64

/** Slots one reservation claims at this spacing: at least one. */
export const slotsPerReservation = (spacing: number): number =>
  Math.max(1, Math.min(maxSlotsPerReservation, Math.floor(reservationWindowMicros / spacing)))

/** `clock`'s now, in whole microseconds (rounding keeps `TestClock`'s sub-millisecond float error out of the slots). */
const microsOf = (clock: Clock.Clock): number => Number((clock.unsafeCurrentTimeNanos() + 500n) / 1000n)

/** Now, in whole microseconds (see `microsOf`). */
export const nowMicros: Effect.Effect<number> = Clock.clockWith((clock) => Effect.sync(() => microsOf(clock)))

/**
 * An `acquire` over slots reserved `count` at a time: `reserve(count)`
 * claims `count` consecutive slots, one `spacing` apart, and answers the
 * first on this process' clock (µs). The slots wait in this process, in
 * order, for whichever fiber asks next; each is used at most once.
 *
 * The next slots are reserved as the last one is handed out, while its
 * fiber waits for it: the schedule runs on without a gap however late the
 * next acquire comes. A fiber that wakes too late for its slot gives it up
 * and takes the next (see `makeLateStartGuard`). Interrupted while it waits,
 * its slot stays taken and unused: never faster than the limit. Slots left
 * over when the sends stop (a round halted or done) are dropped once they
 * are more than `tolerance` in the past, never used late.
 */
export const makePooledAcquire = <E>(options: {
  readonly spacing: number
  readonly count: number
  /** How late a slot may be taken, in µs (`latenessToleranceMicros`). */
  readonly tolerance: number
  readonly reserve: (count: number) => Effect.Effect<number, E>
  readonly mayStart: (slotMicros: number, nowMicros: number, reservation: number) => boolean
}): Effect.Effect<void, E> => {
  const slots: Array<number> = []
  let next = 0
  const refill = Effect.map(options.reserve(options.count), (first) => {
    // Another fiber may have refilled meanwhile: its slots come before these.
    slots.splice(0, next)
    next = 0
    for (let i = 0; i < options.count; i++) slots.push(first + i * options.spacing)
  })

  // Plain functions over the clock looked up once per acquire, each returning the next effect:
  // as a generator over effects (a clock lookup per reading, a step per `yield*`) an acquire
  // allocated ~5 KiB more (the engine over in-memory ports, rounds of 2,000 at 500/s under the
  // heap profiler: 43.8 against 39.0 KiB per send).

  /** Takes the next slot that is not stale, reserving more when there are none left, and waits for it. */
  const takeSlot = (clock: Clock.Clock, reservation: number): Effect.Effect<void, E> => {
    const now = microsOf(clock)
    const from = next
    while (next < slots.length && now - slots[next]! > options.tolerance) next++
    if (next > from) rateLimitSlotsDropped.unsafeUpdate(next - from, [])
    if (next >= slots.length) return Effect.flatMap(refill, () => takeSlot(clock, reservation))
    const slot = slots[next++]!
    return next < slots.length
      ? waitFor(clock, slot, reservation)
      : Effect.flatMap(refill, () => waitFor(clock, slot, reservation))
  }

  /** Sleeps until `slot`, then starts, or gives the slot up for another if it woke too late. */
  const waitFor = (clock: Clock.Clock, slot: number, reservation: number): Effect.Effect<void, E> => {
    // Node's timers count whole milliseconds of a clock read once per loop turn: a sleep
    // can end up to a millisecond early by this (finer) clock. Never start before the slot.
    const now = microsOf(clock)
    if (now < slot) return Effect.flatMap(clock.sleep(Duration.micros(BigInt(slot - now))), () => waitFor(clock, slot, reservation))
    if (options.mayStart(slot, now, reservation)) return Effect.void
    rateLimitSlotsDropped.unsafeUpdate(1, [])
    return takeSlot(clock, reservation + 1)
  }

  return Clock.clockWith((clock) => takeSlot(clock, 1))
}

/**
 * The `acquire` of an adapter at `limitPerSecond` less `margin`: the spacing,
 * the slots per reservation, the tolerance and the late-start guard as both
 * adapters have them, over the adapter's `reserve(count, spacing)`.
 */
export const makeSpacedAcquire = <E>(options: {
  readonly limitPerSecond: number
  readonly margin?: number | undefined
  /** Whether this process is the limit's only user (see `makeLateStartGuard`). */
  readonly soleUser: boolean
  readonly reserve: (count: number, spacing: number) => Effect.Effect<number, E>
}): Effect.Effect<void, E> => {
  const spacing = spacingMicros(options.limitPerSecond, options.margin ?? defaultMargin)
  return makePooledAcquire({
    spacing,
    count: slotsPerReservation(spacing),
    tolerance: latenessToleranceMicros(options.limitPerSecond, spacing),
    reserve: (count) => options.reserve(count, spacing),
    mayStart: makeLateStartGuard(options.limitPerSecond, spacing, { soleUser: options.soleUser })
  })
}
