/**
 * One open SSE stream's way out to its client, written to in place.
 *
 * The response body is this `Readable`, which the server pipes into the
 * socket. Whoever has something for the client pushes it here directly: the
 * feed's listener its events, the shared heartbeat its pings, the shutdown
 * and the token's expiry the end (`Sse.ts`). So an open stream costs this
 * object and what it buffers, not a `Stream` pipeline with its fibers: the
 * pipeline held ~17 fibers, ~820 closures and ~385 effect nodes per open
 * stream (a heap snapshot of 1,000 open streams: ~220 KiB of heap each).
 *
 * What the client has not taken is bounded in bytes: once more than
 * `maxBufferedBytes` wait here (the socket and the kernel hold some more),
 * the client is dropped (`onOverflow`) rather than allowed to grow memory;
 * it reconnects with `Last-Event-ID` and is replayed what it missed.
 */
import * as Effect from "effect/Effect"
import { Readable } from "node:stream"

/** Above this much queued, a writer that waits (`ready`) waits. */
const writerHighWaterMark = 16 * 1024

export class SseChannel extends Readable {
  private finished = false
  private wakeWriter: (() => void) | undefined

  constructor(private readonly maxBufferedBytes: number, private readonly onOverflow: () => void) {
    super({ highWaterMark: writerHighWaterMark })
    // A writer waiting for the client must not wait for a client that is gone.
    this.once("close", () => this._read())
  }

  override _read(): void {
    const wake = this.wakeWriter
    if (wake === undefined) return
    this.wakeWriter = undefined
    wake()
  }

  /** Whether text sent now may still reach the client. */
  get isOpen(): boolean {
    return !this.finished && !this.destroyed
  }

  /**
   * Queues `text` for the client. `false` if the stream has ended, or if this
   * put it over its bound: the client has then been dropped.
   */
  send(text: string): boolean {
    if (!this.isOpen) return false
    this.push(text)
    if (this.readableLength <= this.maxBufferedBytes) return true
    this.dropClient()
    return false
  }

  /** Drops the client at once, for falling too far behind (`onOverflow` does the dropping). */
  dropClient(): void {
    if (!this.isOpen) return
    this.finished = true
    this.onOverflow()
  }

  /** Ends the stream once the client has what is queued. */
  finish(): void {
    if (!this.isOpen) return
    this.finished = true
    this.push(null)
  }

  /**
   * Waits while more than a few KiB are queued, or not at all: a writer with
   * much to send (a replay) goes at the client's pace instead of filling the
   * bound. Completes at once when the stream has ended.
   */
  readonly ready: Effect.Effect<void> = Effect.async<void>((resume) => {
    if (!this.isOpen || this.readableLength < writerHighWaterMark) return resume(Effect.void)
    this.wakeWriter = () => resume(Effect.void)
    return Effect.sync(() => {
      this.wakeWriter = undefined
    })
  })
}
