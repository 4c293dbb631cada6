/**
 * Why a round stops before it has notified everyone, and the one place where
 * that becomes a terminal status of `product_notification_history`.
 */
import * as Data from "effect/Data"
import type { RoundStatus } from "../Domain/Round.js"

export type Halt = Data.TaggedEnum<{
  /** Stock ≤ the product's minimum became visible: no send starts after that. */
  SoldOut: {}
  /** The round's sends reached its fair share of the stock (SPEC §3.11): it is complete. */
  AudienceReached: {}
  /** A send still failed after the retry policy (the notifier's `SendFailed`, given up on). */
  SendGaveUp: { readonly message: string }
  /** The database or Redis stopped answering mid-round. */
  StorageFailed: { readonly message: string }
  /** The process is shutting down (SIGTERM): the round is left resumable. */
  Shutdown: {}
  /** Another dispatcher took the round over: this one must not write again. */
  LeaseLost: {}
}>
export const Halt = Data.taggedEnum<Halt>()

export interface TerminalOutcome {
  readonly status: Exclude<RoundStatus, "IN_PROGRESS">
  readonly error: string | null
}

/**
 * The terminal status of a round, from why it halted (if it did) and whether
 * that left any subscriber without a send. A halt that came after the last send
 * had started cut nothing short: everyone was notified, so the round completed —
 * unless a send failed, which always ends it `CANCELED_BY_ERROR`.
 * `undefined`: the round must not be written (the lease is lost).
 */
export const terminalOutcome = (halt: Halt | undefined, cutShort: boolean): TerminalOutcome | undefined => {
  if (halt === undefined) return { status: "COMPLETED", error: null }
  return Halt.$match(halt, {
    SendGaveUp: ({ message }): TerminalOutcome => ({ status: "CANCELED_BY_ERROR", error: message }),
    LeaseLost: () => undefined,
    AudienceReached: (): TerminalOutcome => ({ status: "COMPLETED", error: null }),
    SoldOut: (): TerminalOutcome =>
      cutShort ? { status: "CANCELED_BY_SOLD_OUT", error: null } : { status: "COMPLETED", error: null },
    StorageFailed: ({ message }): TerminalOutcome =>
      cutShort ? { status: "CANCELED_BY_ERROR", error: message } : { status: "COMPLETED", error: null },
    Shutdown: (): TerminalOutcome =>
      cutShort ? { status: "CANCELED_BY_ERROR", error: "shutdown" } : { status: "COMPLETED", error: null }
  })
}
