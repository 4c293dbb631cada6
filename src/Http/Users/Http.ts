import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { Delivery } from "../../Domain/Delivery.js"
import { UnsubscribeLinks, type UnsubscribeLinksShape } from "../../Unsubscribe/Links.js"
import { Api } from "../Api.js"
import { requireActingFor } from "../Auth/Principal.js"
import { Authenticator } from "../Auth/Tokens.js"
import * as Sse from "../Sse.js"
import { RestockEvent, UserToken } from "./Api.js"
import { isGap, userDeliveries } from "./DeliveryStream.js"

const encodeRestockEvent = Schema.encodeSync(RestockEvent)

/**
 * A delivery as its event's data. The link is made here, from the product and
 * the user, rather than carried by the feed, so replayed deliveries read from
 * the history get it the same way live ones do.
 */
const restockEventOf = (links: UnsubscribeLinksShape, delivery: Delivery) =>
  encodeRestockEvent(new RestockEvent({
    productId: delivery.productId,
    productName: delivery.productName,
    restockRound: delivery.restockRound,
    sentAt: delivery.sentAt,
    unsubscribeUrl: links.linkOf(delivery.productId, delivery.userId)
  }, { disableValidation: true }))

/** Completes at `deadline`, through `Clock`. */
const sleepUntil = (deadline: Date) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sleep(Duration.millis(Math.max(0, deadline.getTime() - now))))

export const HttpUsersLive = HttpApiBuilder.group(Api, "users", (handlers) =>
  Effect.gen(function*() {
    const authenticator = yield* Authenticator
    const links = yield* UnsubscribeLinks
    return handlers
      .handle("mintToken", ({ path, payload }) =>
        authenticator.mint(
          path.userId,
          payload?.ttlSeconds === undefined ? undefined : Duration.seconds(payload.ttlSeconds)
        ).pipe(Effect.map((minted) => new UserToken(minted))))
      .handle("notifications", ({ headers, path, request, urlParams }) =>
        Effect.gen(function*() {
          const principal = yield* requireActingFor(path.userId)
          // EventSource resends its original URL on reconnect, with a newer
          // `Last-Event-ID` header: the header is the fresher of the two.
          const lastEventId = headers["last-event-id"] ?? urlParams.lastEventId ?? null
          const deliveries = yield* userDeliveries(path.userId, {
            lastEventId,
            onOverflow: Effect.provideService(Sse.dropConnection, HttpServerRequest.HttpServerRequest, request)
          })
          const events = deliveries.pipe(
            Stream.map((event) =>
              isGap(event)
                // No id: the client's Last-Event-ID stays the last delivery it received.
                ? Sse.encodeEvent("gap", { prunedThrough: event.prunedThrough })
                : Sse.encodeEvent("restock", restockEventOf(links, event), event.id)
            ),
            // A user's stream never outlives the token that opened it.
            principal._tag === "User" ? Stream.interruptWhen(sleepUntil(principal.expiresAt)) : (stream) => stream
          )
          return yield* Sse.response(events)
        }))
  }))
