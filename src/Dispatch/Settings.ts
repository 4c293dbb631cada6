/**
 * How a dispatcher paces and batches its work, and the sizes that follow
 * from it at a given limit.
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import type { SendWindow } from "./SendWindow.js"

/** How a dispatcher paces and batches its work. */
export interface DispatchSettingsShape {
  /**
   * The least sends that may be started but not yet recorded: bounds overlap
   * and what a crash can repeat. At high limits the window grows to 50 ms of
   * sends (see `unrecordedWindow`).
   */
  readonly maxInFlight: number
  /** Subscribers read per page. */
  readonly pageSize: number
  /** The most delivery records written in one transaction. */
  readonly maxRecordBatch: number
  /** Retries of a transient send failure (`NOTIFIER_RETRIES`). */
  readonly retries: number
  /** How long a dispatcher's claim on a round holds without a heartbeat. */
  readonly leaseDuration: Duration.Duration
  /** How long to keep retrying a record or status write while the database is away. */
  readonly storageRetryWindow: Duration.Duration
  /** On shutdown, how long halted rounds may take to await their in-flight sends. */
  readonly shutdownGrace: Duration.Duration
  /** When sends may start (`SEND_WINDOW`); `null`: at any time. */
  readonly sendWindow: SendWindow | null
}

export class DispatchSettings extends Context.Tag("restock/DispatchSettings")<
  DispatchSettings,
  DispatchSettingsShape
>() {
  static readonly defaults: DispatchSettingsShape = {
    // With the window's growth, 25 at the default 500/s: a sender answering in up to ~40 ms
    // plus a record write, and a SIGKILL repeats at most 25 (SPEC §3.7).
    maxInFlight: 20,
    pageSize: 500,
    maxRecordBatch: 500,
    retries: 3,
    leaseDuration: Duration.seconds(10),
    storageRetryWindow: Duration.seconds(30),
    shutdownGrace: Duration.seconds(5),
    sendWindow: null
  }
}

/**
 * How long a window of unrecorded sends lasts at the limit: sends started
 * but not yet recorded are at most this many milliseconds of the limit's
 * sends, or `maxInFlight` if more, or `maxRecordBatch` if fewer.
 */
export const unrecordedWindowMillis = 50

/** The most sends started but not yet recorded at `limitPerSecond`: 25 at 500/s with the defaults. */
export const unrecordedWindow = (settings: DispatchSettingsShape, limitPerSecond: number): number =>
  Math.max(
    settings.maxInFlight,
    Math.min(settings.maxRecordBatch, Math.floor((limitPerSecond * unrecordedWindowMillis) / 1000))
  )

/** The longest a small batch of records waits for more (see `GroupCommit.ts`). */
export const maxLingerMillis = 100
