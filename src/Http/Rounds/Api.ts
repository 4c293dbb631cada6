import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { Recipient } from "../../Domain/Delivery.js"
import { HistoryPruned, NothingToResume, ProductNotFound, RoundInProgress, RoundNotFound } from "../../Domain/Errors.js"
import { DeliveryId } from "../../Domain/Ids.js"
import { Stock } from "../../Domain/Product.js"
import { Round } from "../../Domain/Round.js"
import { AdminAuth, AdminStreamAuth } from "../Auth/Api.js"
import { productIdParam, RecipientPageParams, restockRoundParam } from "../Params.js"
import { eventStream } from "../Sse.js"

/** The optional body of a restock: the new stock, set before the round opens. */
export class RestockRequest extends Schema.Class<RestockRequest>("RestockRequest")({
  stock: Schema.optional(Stock)
}) {}

export class RecipientPage extends Schema.Class<RecipientPage>("RecipientPage")({
  items: Schema.Array(Recipient),
  /** Pass as `afterId` for the next page; `null` at the end. */
  nextAfterId: Schema.NullOr(DeliveryId)
}) {}

export class RoundsApi extends HttpApiGroup.make("rounds")
  .add(
    HttpApiEndpoint.post("restock")`/products/${productIdParam}/notifications/re-stock`
      // No body (or `null`) restocks with the stock as it is.
      .setPayload(Schema.NullOr(RestockRequest))
      .addSuccess(Round, { status: 202 })
      .addError(ProductNotFound)
      .addError(RoundInProgress)
      .annotate(OpenApi.Summary, "Restock: open the next round and start notifying subscribers")
  )
  .add(
    HttpApiEndpoint.post("resume")`/admin/products/${productIdParam}/notifications/re-stock`
      .addSuccess(Round, { status: 202 })
      .addError(ProductNotFound)
      .addError(NothingToResume)
      .annotate(OpenApi.Summary, "Resume the latest round, interrupted by an error or a lost dispatcher")
  )
  .add(
    HttpApiEndpoint.get("listRounds")`/products/${productIdParam}/notifications`
      .addSuccess(Schema.Array(Round))
      .addError(ProductNotFound)
      .annotate(OpenApi.Summary, "The product's rounds, newest first")
  )
  .add(
    HttpApiEndpoint.get("getRound")`/products/${productIdParam}/notifications/${restockRoundParam}`
      .addSuccess(Round)
      .addError(ProductNotFound)
      .addError(RoundNotFound)
      .annotate(OpenApi.Summary, "One round")
  )
  .add(
    HttpApiEndpoint.get("recipients")`/products/${productIdParam}/notifications/${restockRoundParam}/recipients`
      .setUrlParams(RecipientPageParams)
      .addSuccess(RecipientPage)
      .addError(ProductNotFound)
      .addError(RoundNotFound)
      .addError(HistoryPruned)
      .annotate(OpenApi.Summary, "Who received a round, in send order")
      .annotate(
        OpenApi.Description,
        "In the order the sends succeeded and were recorded: sends overlap, so a user may come a few places " +
          "away from their subscription order (never more than the sends in flight); `sentAt` is when each send started. " +
          "410 `HistoryPruned` once the retention (`HISTORY_RETENTION`) deleted any of the round's records."
      )
  )
  .middlewareEndpoints(AdminAuth)
  .add(
    HttpApiEndpoint.get("progress")`/admin/products/${productIdParam}/notifications/stream`
      .addSuccess(eventStream(
        "`progress` events, each a Round as JSON (`null` first if the product has none): the latest round, " +
          "then on every change, at least every 250 ms while sending; the stream ends after a terminal status. " +
          "`: ping` comments keep it alive. Accepts the admin token as `?access_token=` for EventSource."
      ))
      .addError(ProductNotFound)
      .middleware(AdminStreamAuth)
      .annotate(OpenApi.Summary, "Server-Sent Events: the progress of the product's latest round")
  )
  .annotate(OpenApi.Title, "Restock rounds")
{}
