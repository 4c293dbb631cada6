import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import * as Metrics from "../../Observability/Metrics.js"
import { UnsubscribeLinks } from "../../Unsubscribe/Links.js"
import { Api } from "../Api.js"
import { requireActingFor } from "../Auth/Principal.js"
import { Authenticator } from "../Auth/Tokens.js"
import * as Sse from "../Sse.js"
import { UserToken } from "./Api.js"
import { isGap, userDeliveries } from "./DeliveryStream.js"
import { gapEventText, restockEventText } from "./Events.js"

export const HttpUsersLive = HttpApiBuilder.group(Api, "users", (handlers) =>
  Effect.gen(function*() {
    const authenticator = yield* Authenticator
    const links = yield* UnsubscribeLinks
    const streams = yield* Sse.OpenStreams
    const config = yield* Sse.SseConfig
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
          const runFork = Runtime.runFork(yield* Effect.runtime<never>())
          const channel = streams.open({
            // A user's stream never outlives the token that opened it.
            closesAt: principal._tag === "User" ? principal.expiresAt.getTime() : undefined,
            onOverflow: () => {
              Sse.dropConnectionOf(request)
              Metrics.sseSlowClientsDropped.unsafeUpdate(1, [])
              runFork(Effect.logInfo("SSE client fell behind its buffer: dropped").pipe(
                Effect.annotateLogs({ userId: path.userId, bufferBytes: config.bufferBytes })
              ))
            }
          })
          yield* userDeliveries(path.userId, { lastEventId }, {
            write: (event) => channel.send(isGap(event) ? gapEventText(event) : restockEventText(links, event)),
            ready: channel.ready,
            end: () => channel.finish(),
            overflow: () => channel.dropClient()
          }).pipe(
            // No stream to answer with (the feed refused, or the request went away): the channel
            // goes, uncounted, and the request gets its error status.
            Effect.onError(() => Effect.sync(() => channel.destroy()))
          )
          return Sse.responseOf(channel)
        }))
  }))
