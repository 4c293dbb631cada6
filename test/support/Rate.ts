/**
 * How a sequence of timestamps measures against a rate limit, the way the
 * third party measures it: the most events in any sliding window, and how
 * close to the limit the sustained rate came.
 */

/**
 * The largest number of timestamps in any half-open window
 * `[t, t + windowMs)`. The busiest window starts at some timestamp, so a
 * two-pointer sweep over the sorted timestamps finds it in O(n log n).
 */
export const maxInSlidingWindow = (timestampsMs: ReadonlyArray<number>, windowMs: number): number => {
  const sorted = [...timestampsMs].sort((a, b) => a - b)
  let best = 0
  let end = 0
  for (let start = 0; start < sorted.length; start++) {
    while (end < sorted.length && sorted[end]! < sorted[start]! + windowMs) end++
    best = Math.max(best, end - start)
  }
  return best
}

/**
 * The sustained rate, in events per second: the n − 1 gaps between the
 * first and the last event over the time they span. `NaN` for fewer than two.
 */
export const achievedRate = (timestampsMs: ReadonlyArray<number>): number => {
  if (timestampsMs.length < 2) return Number.NaN
  // A loop, not Math.min(...): a spread of 100,000 arguments overflows the stack.
  let first = Infinity
  let last = -Infinity
  for (const t of timestampsMs) {
    first = Math.min(first, t)
    last = Math.max(last, t)
  }
  return ((timestampsMs.length - 1) * 1000) / (last - first)
}
