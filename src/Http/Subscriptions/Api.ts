import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import { ProductNotFound } from "../../Domain/Errors.js"
import { Subscription } from "../../Domain/Subscription.js"
import { UserAuth } from "../Auth/Api.js"
import { Forbidden } from "../Errors.js"
import { productIdParam, userIdParam } from "../Params.js"

/** A user's own subscriptions: their token (or the admin's) for their user id. */
export class SubscriptionsApi extends HttpApiGroup.make("subscriptions")
  .add(
    HttpApiEndpoint.put("subscribe")`/products/${productIdParam}/subscriptions/${userIdParam}`
      .addSuccess(Subscription)
      .addError(ProductNotFound)
      .addError(Forbidden)
      .annotate(
        OpenApi.Summary,
        "Subscribe to a product's restocks (idempotent; subscribing again keeps the original place in line)"
      )
  )
  .add(
    HttpApiEndpoint.del("unsubscribe")`/products/${productIdParam}/subscriptions/${userIdParam}`
      .addError(ProductNotFound)
      .addError(Forbidden)
      .annotate(OpenApi.Summary, "Unsubscribe (idempotent)")
  )
  .middlewareEndpoints(UserAuth)
  .annotate(OpenApi.Title, "Subscriptions")
{}
