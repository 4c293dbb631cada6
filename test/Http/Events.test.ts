/**
 * The user stream's events as written out (`Users/Events.ts`) against what
 * the `RestockEvent` schema and the SSE encoder make of the same delivery:
 * the hand-written text must be the same bytes.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { Delivery } from "../../src/Domain/Delivery.js"
import { DeliveryId, ProductId, RestockRound, UserId } from "../../src/Domain/Ids.js"
import { encodeEvent } from "../../src/Http/Sse.js"
import { RestockEvent } from "../../src/Http/Users/Api.js"
import { gapEventText, restockEventText } from "../../src/Http/Users/Events.js"
import { UnsubscribeLinks } from "../../src/Unsubscribe/Links.js"

const delivery = (productName: string) =>
  new Delivery({
    id: DeliveryId.make(42),
    productId: ProductId.make(7),
    productName,
    userId: UserId.make(3),
    restockRound: RestockRound.make(2),
    sentAt: new Date("2026-12-03T08:00:00.125Z")
  })

describe("user stream events", () => {
  it.effect("a restock event is the schema's encoding in the SSE encoder's framing, for any product name", () =>
    Effect.gen(function*() {
      const links = yield* UnsubscribeLinks
      for (const name of ["Kettle", "a \"quoted\"\nname\r\nwith breaks", "ünïcødé ☕ \u2028", ""]) {
        const d = delivery(name)
        const viaSchema = encodeEvent(
          "restock",
          Schema.encodeSync(RestockEvent)(
            new RestockEvent({
              productId: d.productId,
              productName: d.productName,
              restockRound: d.restockRound,
              sentAt: d.sentAt,
              unsubscribeUrl: links.linkOf(d.productId, d.userId)
            })
          ),
          d.id
        )
        expect(restockEventText(links, d)).toBe(viaSchema)
        // The second stream of the same delivery gets the same text, made once.
        expect(restockEventText(links, d)).toBe(viaSchema)
      }
    }).pipe(Effect.provide(UnsubscribeLinks.layer({ publicUrl: "http://127.0.0.1:8080", secret: "test-secret-test-secret" }))))

  it("a gap event has no id, so the client's Last-Event-ID stays its last delivery", () => {
    expect(gapEventText({ _tag: "Gap", prunedThrough: 99 })).toBe("event: gap\ndata: {\"prunedThrough\":99}\n\n")
  })
})
