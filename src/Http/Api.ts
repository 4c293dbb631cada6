/**
 * The HTTP API of restock (SPEC §4), schema first: every endpoint, its
 * inputs, answers and errors, from which the server, `/openapi.json` and
 * `/docs` are derived. `GET /` (the console) and `GET /metrics` are plain
 * routes beside it.
 */
import { HttpApi, OpenApi } from "@effect/platform"
import { StorageUnavailable } from "../Domain/Errors.js"
import { BadRequest, PayloadTooLarge } from "./Errors.js"
import { HealthApi } from "./Health/Api.js"
import { ProductsApi } from "./Products/Api.js"
import { RoundsApi } from "./Rounds/Api.js"
import { SubscriptionsApi } from "./Subscriptions/Api.js"
import { UsersApi } from "./Users/Api.js"

export class Api extends HttpApi.make("restock")
  .add(ProductsApi)
  .add(RoundsApi)
  .add(SubscriptionsApi)
  .add(UsersApi)
  .add(HealthApi)
  // Any endpoint can meet these: malformed input, and storage that is down.
  .addError(BadRequest)
  .addError(PayloadTooLarge)
  .addError(StorageUnavailable)
  .annotate(OpenApi.Title, "restock")
  .annotate(
    OpenApi.Description,
    "Back-in-stock notifications: subscribe to a product, restock it, and every active subscriber is notified " +
      "in subscription order, at most RATE_LIMIT_PER_SECOND per second, until it sells out again. " +
      "Errors are JSON `{ _tag, message }`."
  )
{}
