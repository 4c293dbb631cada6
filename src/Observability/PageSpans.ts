/**
 * Spans over pages of sends. A round's trace reads trigger → round → pages:
 * each page span opens as the first send of a page starts and ends once the
 * outcome of its last send is taken, so a round of any size shows a handful
 * of spans, never one per send.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Tracer from "effect/Tracer"

export interface PageSpans {
  /** As a send starts: the span of the page it belongs to, opened for a page's first send. */
  readonly started: Effect.Effect<Tracer.Span>
  /** `started` when the current page has room: its span at once, or `undefined` when a page must be opened. */
  readonly startedNow: () => Tracer.Span | undefined
  /** As a send's outcome is taken: ends its page once every send of the full page has settled (a plain call, from a send's callback). */
  readonly settled: (page: Tracer.Span, succeeded: boolean) => void
  /** Ends the pages still open (the last, partial one; or all of them when a round stops early). */
  readonly close: Effect.Effect<void>
}

interface Page {
  readonly span: Tracer.Span
  started: number
  settled: number
  succeeded: number
}

/** Pages of `pageSize` sends, as children of the current span. */
export const make = (pageSize: number): Effect.Effect<PageSpans> =>
  Effect.clockWith((clock) =>
    Effect.sync(() => {
    const open = new Map<Tracer.Span, Page>()
    let current: Page | undefined
    let count = 0

    const end = (page: Page) => {
      open.delete(page.span)
      page.span.attribute("sends", page.started)
      page.span.attribute("succeeded", page.succeeded)
      page.span.end(clock.unsafeCurrentTimeNanos(), Exit.void)
    }

    const startedNow = () => {
      if (current === undefined || current.started >= pageSize) return undefined
      current.started += 1
      return current.span
    }

    return {
      startedNow,
      started: Effect.suspend(() => {
        const span = startedNow()
        if (span !== undefined) return Effect.succeed(span)
        count += 1
        // Made with the tracer on: the sends it spans run with it off.
        return Effect.map(Effect.withTracerEnabled(Effect.makeSpan("restock.page", { attributes: { page: count } }), true), (span) => {
          current = { span, started: 1, settled: 0, succeeded: 0 }
          open.set(span, current)
          return span
        })
      }),
      settled: (span, succeeded) => {
        const page = open.get(span)
        if (page === undefined) return
        page.settled += 1
        if (succeeded) page.succeeded += 1
        if (page.started === pageSize && page.settled === page.started) end(page)
      },
      close: Effect.sync(() => {
        for (const page of [...open.values()]) end(page)
      })
    }
  }))
