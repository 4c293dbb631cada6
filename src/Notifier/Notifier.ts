/**
 * The `Notifier` port: hands one notification to the third-party sender.
 *
 * One call is one request to the sender (one attempt): retries belong to the
 * dispatch, because every request that reaches the sender, retries included,
 * counts against the global rate limit.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type { Notification } from "../Domain/Delivery.js"

/**
 * A send that did not succeed. `Transient` failures (429, 5xx, network
 * errors, timeouts) are worth retrying; `Permanent` ones (other 4xx) are not.
 */
export class SendFailed extends Data.TaggedError("SendFailed")<{
  readonly reason: "Transient" | "Permanent"
  readonly message: string
  /** The sender asked not to retry before this long (`Retry-After`). */
  readonly retryAfter?: Duration.Duration | undefined
}> {}

export interface NotifierShape {
  readonly send: (notification: Notification) => Effect.Effect<void, SendFailed>
  /**
   * The same request as `send`, driven by a callback instead of an effect:
   * what the dispatch uses for a send's first attempt, when a notifier has
   * it. `done` is called once with the outcome (`Exit.void` for success, the
   * `SendFailed`, or a defect), possibly before `start` returns; the function
   * returned aborts the request (then `done` is not called). A notifier
   * without it is run through `send`, on a fiber of its own per request.
   */
  readonly start?: ((notification: Notification, done: (outcome: Exit.Exit<void, SendFailed>) => void) => Abort) | undefined
}

/** Aborts a started request: it frees what the request holds, and its `done` is not called. */
export type Abort = () => void

export class Notifier extends Context.Tag("restock/Notifier")<Notifier, NotifierShape>() {}

/** The effect form of a notifier's `start`: one request, aborted if the effect is interrupted. */
export const sendVia = (
  start: NonNullable<NotifierShape["start"]>
) =>
(notification: Notification): Effect.Effect<void, SendFailed> =>
  Effect.async<void, SendFailed>((resume) => Effect.sync(start(notification, resume)))
