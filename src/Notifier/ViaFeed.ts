/**
 * The `Notifier` for `NOTIFIER=sse`: listeners on the SSE streams are the
 * recipients, and they are reached from the records, not from here.
 *
 * Why `send` accepts every notification at once and does nothing:
 * - an SSE event's id must be the `product_user_notification_history` row id,
 *   so that a listener reconnecting with `Last-Event-ID` replays exactly what
 *   it missed. That id exists only once the record is written, after `send`;
 * - a listener must never see a notification whose record then fails to
 *   commit (it would not be replayed, and the round would send it again on
 *   resume).
 * So the dispatch publishes the recorded deliveries to the `DeliveryFeed`
 * once their records commit, and the SSE streams read that feed. Sends still
 * pass through the rate limiter like any other notifier's.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { Notifier, type NotifierShape } from "./Notifier.js"

export const make: NotifierShape = {
  send: () => Effect.void,
  // Accepted at once, without a fiber per send.
  start: (_notification, done) => {
    done(Exit.void)
    return () => {}
  }
}

export const layer: Layer.Layer<Notifier> = Layer.succeed(Notifier, make)
