/**
 * The open user streams' expiries, earliest first: the line the SSE streams'
 * shared timer sleeps on (`Sse.ts`). A binary min-heap by hand, as Effect
 * has no mutable priority queue: an open costs a push, an expiry a pop, each
 * O(log n) without allocating.
 */
import type { SseChannel } from "./SseChannel.js"

/** A user stream's expiry, in the shared timer's line (a min-heap by `at`). */
export interface Expiry {
  readonly at: number
  /** Cleared when the stream closes first: the entry then waits out its time holding nothing. */
  channel: SseChannel | undefined
}

/** The earliest expiry first: `push` and `pop` in O(log n). */
export class ExpiryLine {
  private readonly heap: Array<Expiry> = []

  get earliest(): Expiry | undefined {
    return this.heap[0]
  }

  push(entry: Expiry): void {
    const heap = this.heap
    let i = heap.push(entry) - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap[parent]!.at <= entry.at) break
      heap[i] = heap[parent]!
      i = parent
    }
    heap[i] = entry
  }

  pop(): Expiry | undefined {
    const heap = this.heap
    const top = heap[0]
    const last = heap.pop()
    if (top === undefined || last === undefined || heap.length === 0) return top
    let i = 0
    while (true) {
      const left = 2 * i + 1
      if (left >= heap.length) break
      const right = left + 1
      const child = right < heap.length && heap[right]!.at < heap[left]!.at ? right : left
      if (heap[child]!.at >= last.at) break
      heap[i] = heap[child]!
      i = child
    }
    heap[i] = last
    return top
  }
}
