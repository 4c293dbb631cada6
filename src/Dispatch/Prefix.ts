/**
 * The contiguous successful prefix of a round (SPEC §3.5), from turns that
 * settle in any order: `last_sent_user_id` is the user of the last turn
 * before the first one that failed or has not settled yet.
 */
export interface PrefixTracker<U> {
  /** Turn `position` (0, 1, 2 … in subscription order) settled. */
  readonly settle: (position: number, succeeded: boolean, userId: U) => void
  /** The prefix's last user if it moved since the last call, else `undefined`. */
  readonly advanced: () => U | undefined
}

export const makePrefixTracker = <U>(): PrefixTracker<U> => {
  // Turns settled ahead of the prefix, waiting for the turns before them.
  const ahead = new Map<number, { readonly succeeded: boolean; readonly userId: U }>()
  let next = 0
  let broken = false
  let end: U | undefined

  return {
    settle: (position, succeeded, userId) => {
      if (broken) return
      ahead.set(position, { succeeded, userId })
      for (let turn = ahead.get(next); turn !== undefined; turn = ahead.get(next)) {
        ahead.delete(next)
        next += 1
        if (!turn.succeeded) {
          // The prefix ends for good: nothing after a failed turn extends it.
          broken = true
          ahead.clear()
          return
        }
        end = turn.userId
      }
    },
    advanced: () => {
      const moved = end
      end = undefined
      return moved
    }
  }
}
