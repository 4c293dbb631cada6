/**
 * The user stream's events as the bytes of `text/event-stream` (SPEC §4 "User
 * SSE stream"): `restock` with the delivery's id, and `gap` without one (the
 * client's `Last-Event-ID` stays the last delivery it received).
 *
 * A `restock` event is written out rather than encoded through the
 * `RestockEvent` schema and the SSE encoder: every live delivery of a user
 * is encoded for each of their open streams, and the schema's encoder cost
 * more than the rest of the event's way. The same delivery's text is made
 * once and shared by every stream that gets it (a user with several tabs).
 * The user stream's test holds the text to the schema's encoding.
 */
import type { Delivery } from "../../Domain/Delivery.js"
import type { UnsubscribeLinksShape } from "../../Unsubscribe/Links.js"
import { encodeEvent } from "../Sse.js"
import type { Gap } from "./DeliveryStream.js"

/** `restock` events by delivery: made by the first stream that writes one, kept while the delivery is. */
const encoded = new WeakMap<Delivery, string>()

/** The event of one delivery, with its unsubscribe link (made here, so replayed and live events get it alike). */
export const restockEventText = (links: UnsubscribeLinksShape, delivery: Delivery): string => {
  let text = encoded.get(delivery)
  if (text === undefined) {
    // `JSON.stringify` writes no raw newline, so the data is one `data:` line.
    text = `id: ${delivery.id}\nevent: restock\ndata: ${
      JSON.stringify({
        productId: delivery.productId,
        productName: delivery.productName,
        restockRound: delivery.restockRound,
        sentAt: delivery.sentAt.toISOString(),
        unsubscribeUrl: links.linkOf(delivery.productId, delivery.userId)
      })
    }\n\n`
    encoded.set(delivery, text)
  }
  return text
}

export const gapEventText = (gap: Gap): string => encodeEvent("gap", { prunedThrough: gap.prunedThrough })
