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
import type * as Effect from "effect/Effect"
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
}

export class Notifier extends Context.Tag("restock/Notifier")<Notifier, NotifierShape>() {}
