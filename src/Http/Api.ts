/**
 * The HTTP API of restock (SPEC §4), schema first: every endpoint, its
 * inputs, answers and errors, from which the server, `/openapi.json` and
 * `/docs` are derived. `GET /` (the console) and `GET /metrics` are plain
 * routes beside it.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as OpenApi from "@effect/platform/OpenApi"
import { StorageUnavailable } from "../Domain/Errors.js"
import { BadRequest, PayloadTooLarge, UnsupportedMediaType } from "./Errors.js"
import { HealthApi } from "./Health/Api.js"
import { ProductsApi } from "./Products/Api.js"
import { RoundsApi } from "./Rounds/Api.js"
import { SubscriptionsApi } from "./Subscriptions/Api.js"
import { UnsubscribeApi } from "./Unsubscribe/Api.js"
import { UsersApi } from "./Users/Api.js"

/**
 * A body whose schema admits `null` may be left out (it is read as `null`),
 * which the generator cannot tell: say so in the spec.
 */
function optionalNullableBodies(spec: Record<string, any>): Record<string, any> {
  for (const operations of Object.values<Record<string, any>>(spec.paths ?? {})) {
    for (const operation of Object.values<any>(operations)) {
      const schema = operation?.requestBody?.content?.["application/json"]?.schema
      if (Array.isArray(schema?.anyOf) && schema.anyOf.some((branch: any) => branch?.type === "null")) {
        operation.requestBody.required = false
      }
    }
  }
  return spec
}

export class Api extends HttpApi.make("restock")
  .add(ProductsApi)
  .add(RoundsApi)
  .add(SubscriptionsApi)
  .add(UnsubscribeApi)
  .add(UsersApi)
  .add(HealthApi)
  // Any endpoint can meet these: malformed input, and storage that is down.
  .addError(BadRequest)
  .addError(PayloadTooLarge)
  .addError(UnsupportedMediaType)
  .addError(StorageUnavailable)
  .annotate(OpenApi.Title, "restock")
  .annotate(
    OpenApi.Description,
    "Back-in-stock notifications: subscribe to a product, restock it, and every active subscriber is notified " +
      "in subscription order, at most RATE_LIMIT_PER_SECOND per second, until it sells out again. " +
      "Errors are JSON `{ _tag, message }`."
  )
  .annotate(OpenApi.Transform, optionalNullableBodies)
{}
