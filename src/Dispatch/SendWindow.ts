/**
 * The send window (SPEC §3.12): sends start only while the local time in the
 * window's zone is at or after its start and before its end. A window may
 * cross midnight (`21:00-08:00`).
 *
 * Local time comes from the platform's time-zone data (`Intl`), never from a
 * table of offsets, so daylight-saving changes land where the zone says. The
 * next opening or closing is found by jumping from one candidate instant to
 * the next: the wall-clock distance to the boundary, taken as real time, is
 * exact unless the zone's offset changes on the way; then the jump stops at
 * the change (found by bisection, to the millisecond) and goes on from there.
 * So on the day clocks go forward over the opening (02:30 in a zone that jumps
 * from 02:00 to 03:00), the window opens at the jump, 03:00; on the day they
 * go back over a closing, the hour that repeats is inside the window twice.
 *
 * Computed only when a round starts and when the window closes or opens, never
 * per send: the dispatch compares the clock with the closing it computed.
 */
import * as Either from "effect/Either"

export interface SendWindow {
  /** Minutes after local midnight: the first minute sends may start. */
  readonly startMinute: number
  /** Minutes after local midnight: the first minute sends may no longer start. */
  readonly endMinute: number
  /** The IANA zone of the window, as the platform names it. */
  readonly timeZone: string
  /** `HH:MM-HH:MM <zone>`: for logs and messages. */
  readonly description: string
  /** The zone's wall clock: milliseconds since 1970-01-01T00:00 local time. */
  readonly wallClock: (instant: number) => number
}

const minuteMillis = 60_000
const dayMillis = 86_400_000

const clockTime = /^([01][0-9]|2[0-3]):([0-5][0-9])$/

const minuteOf = (raw: string): number | undefined => {
  const match = clockTime.exec(raw)
  return match === null ? undefined : Number(match[1]) * 60 + Number(match[2])
}

/** The zone's formatter, or a reason it is not one. */
export const parseTimeZone = (raw: string): Either.Either<Intl.DateTimeFormat, string> => {
  try {
    return Either.right(
      new Intl.DateTimeFormat("en-US", {
        timeZone: raw,
        hourCycle: "h23",
        year: "numeric",
        month: "numeric",
        day: "numeric",
        hour: "numeric",
        minute: "numeric",
        second: "numeric"
      })
    )
  } catch {
    return Either.left(`expected an IANA time zone such as Europe/Berlin or UTC, got "${raw}"`)
  }
}

const wallClockOf = (format: Intl.DateTimeFormat) => (instant: number): number => {
  const parts: Record<string, number> = {}
  for (const part of format.formatToParts(instant)) {
    if (part.type !== "literal") parts[part.type] = Number(part.value)
  }
  const millis = ((instant % 1000) + 1000) % 1000
  return Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!) + millis
}

/** `HH:MM-HH:MM` in `timeZone`, or a reason it is not a window. */
export const parse = (window: string, timeZone: string): Either.Either<SendWindow, string> => {
  const [from, to, ...rest] = window.split("-")
  const startMinute = from === undefined ? undefined : minuteOf(from)
  const endMinute = to === undefined ? undefined : minuteOf(to)
  if (rest.length > 0 || startMinute === undefined || endMinute === undefined) {
    return Either.left(`expected HH:MM-HH:MM (24-hour local times, e.g. 08:00-21:00), got "${window}"`)
  }
  if (startMinute === endMinute) {
    return Either.left(`a window must start and end at different times, got "${window}" (unset it to send at any time)`)
  }
  return Either.map(parseTimeZone(timeZone), (format) => ({
    startMinute,
    endMinute,
    timeZone: format.resolvedOptions().timeZone,
    description: `${window} ${format.resolvedOptions().timeZone}`,
    wallClock: wallClockOf(format)
  }))
}

const offsetAt = (window: SendWindow, instant: number): number => window.wallClock(instant) - instant

const timeOfDay = (window: SendWindow, instant: number): number =>
  ((window.wallClock(instant) % dayMillis) + dayMillis) % dayMillis

const insideAtTimeOfDay = (window: SendWindow, millisOfDay: number): boolean => {
  const start = window.startMinute * minuteMillis
  const end = window.endMinute * minuteMillis
  return start < end
    ? millisOfDay >= start && millisOfDay < end
    : millisOfDay >= start || millisOfDay < end
}

/** Whether a send may start at `instant`. */
export const isOpen = (window: SendWindow, instant: number): boolean => insideAtTimeOfDay(window, timeOfDay(window, instant))

/** The first instant at or after `from` at which the window is open (`wanted`) or closed. */
const next = (window: SendWindow, from: number, wanted: boolean): number => {
  let instant = from
  // Each step lands on a boundary (the state flips there) or on an offset change: a few suffice.
  for (let step = 0; step < 16; step++) {
    const millisOfDay = timeOfDay(window, instant)
    if (insideAtTimeOfDay(window, millisOfDay) === wanted) return instant
    const boundary = (wanted ? window.startMinute : window.endMinute) * minuteMillis
    const distance = (((boundary - millisOfDay) % dayMillis) + dayMillis) % dayMillis || dayMillis
    const candidate = instant + distance
    const offset = offsetAt(window, instant)
    if (offsetAt(window, candidate) === offset) {
      instant = candidate
      continue
    }
    // The offset changes before the boundary: stop at the first millisecond of the new one.
    let before = instant
    let after = candidate
    while (after - before > 1) {
      const middle = Math.floor((before + after) / 2)
      if (offsetAt(window, middle) === offset) before = middle
      else after = middle
    }
    instant = after
  }
  // Unreachable for a real zone (at most two offset changes a day); open now rather than never.
  return from
}

/** When sends may start next: `instant` itself if the window is open then. */
export const nextOpening = (window: SendWindow, instant: number): number => next(window, instant, true)

/** When the window next closes: `instant` itself if it is closed then. */
export const nextClosing = (window: SendWindow, instant: number): number => next(window, instant, false)
