import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { ProductId, RestockRound } from "../../Domain/Ids.js"
import { AdminAuth, UserAuth } from "../Auth/Api.js"
import { Forbidden } from "../Errors.js"
import { userIdParam } from "../Params.js"
import { eventStream } from "../Sse.js"

/** The optional body of `POST /admin/users/{userId}/token`. */
export class TokenRequest extends Schema.Class<TokenRequest>("TokenRequest")({
  /** How long the token lives; one hour by default, at most 30 days. */
  ttlSeconds: Schema.optional(Schema.Int.pipe(Schema.between(1, 30 * 24 * 3600)))
}) {}

export class UserToken extends Schema.Class<UserToken>("UserToken")({
  token: Schema.String,
  expiresAt: Schema.Date
}) {}

/** The `data` of a `restock` event; its `id` is the delivery's history row id. */
export class RestockEvent extends Schema.Class<RestockEvent>("RestockEvent")({
  productId: ProductId,
  productName: Schema.String,
  restockRound: RestockRound,
  sentAt: Schema.Date,
  /** The one-click link that unsubscribes this user from this product (SPEC §3.13). */
  unsubscribeUrl: Schema.String
}) {}

/** An event id to resume after: decimal digits; `0` replays every delivery of the user. */
const LastEventId = Schema.String.pipe(
  Schema.pattern(/^(0|[1-9][0-9]{0,15})$/),
  Schema.compose(Schema.NumberFromString),
  Schema.compose(Schema.Int.pipe(Schema.between(0, Number.MAX_SAFE_INTEGER)))
).annotations({
  identifier: "LastEventId",
  message: () => ({ message: "expected the id of an event (a non-negative integer)", override: true })
})

export class UsersApi extends HttpApiGroup.make("users")
  .add(
    HttpApiEndpoint.post("mintToken")`/admin/users/${userIdParam}/token`
      // No body (or `null`) mints a token of the default lifetime.
      .setPayload(Schema.NullOr(TokenRequest))
      .addSuccess(UserToken)
      .middleware(AdminAuth)
      .annotate(OpenApi.Summary, "Mint a user token (HS256 JWT) for demos and tools")
  )
  .add(
    HttpApiEndpoint.get("notifications")`/users/${userIdParam}/notifications/stream`
      .setHeaders(Schema.Struct({ "last-event-id": Schema.optional(LastEventId) }))
      .setUrlParams(Schema.Struct({ lastEventId: Schema.optional(LastEventId) }))
      .addSuccess(eventStream(
        "`restock` events: `id` is the delivery id, `data` a RestockEvent as JSON. With `Last-Event-ID` " +
          "(or `?lastEventId=`; the header wins), every later delivery of the user is replayed first, then " +
          "live ones follow with no gap and no duplicate. If the history retention deleted deliveries the client had " +
          "not seen (its Last-Event-ID is below the highest id pruned), the replay starts with an event `gap`, data " +
          "`{ \"prunedThrough\": <id> }`, no id. `: ping` comments keep the stream alive. A stream " +
          "opened with a user token ends when the token expires; a client that falls behind is disconnected."
      ))
      .addError(Forbidden)
      .middleware(UserAuth)
      .annotate(OpenApi.Summary, "Server-Sent Events: the user's restock notifications")
  )
  .annotate(OpenApi.Title, "Users")
{}
