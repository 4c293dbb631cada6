import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { ProductNotFound } from "../../Domain/Errors.js"
import { ProductId } from "../../Domain/Ids.js"
import { maxStock, Product, ProductUpsert, Stock } from "../../Domain/Product.js"
import { Round } from "../../Domain/Round.js"
import { AdminAuth } from "../Auth/Api.js"
import { ProductPageParams, productIdParam } from "../Params.js"

/** `PUT /admin/products/{productId}/stock`. */
export class SetStock extends Schema.Class<SetStock>("SetStock")({
  stock: Stock
}) {}

/** `POST /admin/products/{productId}/stock/adjustments`: a sale (`-1`) or a delivery (`+20`). */
export class StockAdjustment extends Schema.Class<StockAdjustment>("StockAdjustment")({
  delta: Schema.Int.pipe(Schema.between(-maxStock, maxStock))
}) {}

/** A product as the operator console lists it. */
export class ProductSummary extends Schema.Class<ProductSummary>("ProductSummary")({
  ...Product.fields,
  activeSubscribers: Schema.NonNegativeInt,
  latestRound: Schema.NullOr(Round)
}) {}

export class ProductPage extends Schema.Class<ProductPage>("ProductPage")({
  items: Schema.Array(ProductSummary),
  /** Pass as `afterId` for the next page; `null` at the end. */
  nextAfterId: Schema.NullOr(ProductId)
}) {}

export class ProductsApi extends HttpApiGroup.make("products")
  .add(
    HttpApiEndpoint.get("getProduct")`/products/${productIdParam}`
      .addSuccess(Product)
      .addError(ProductNotFound)
      .annotate(OpenApi.Summary, "A product and its stock (public)")
  )
  .add(
    HttpApiEndpoint.put("upsertProduct")`/admin/products/${productIdParam}`
      .setPayload(ProductUpsert)
      .addSuccess(Product)
      .middleware(AdminAuth)
      .annotate(OpenApi.Summary, "Create a product, or update its name, stock, minimum stock and per-unit cap")
      .annotate(
        OpenApi.Description,
        "Fields left out stay as they are; `notifyPerUnit: null` clears the cap. A change of `minimumStock` or " +
          "`notifyPerUnit` applies to rounds started after it."
      )
  )
  .add(
    HttpApiEndpoint.get("listProducts", "/admin/products")
      .setUrlParams(ProductPageParams)
      .addSuccess(ProductPage)
      .middleware(AdminAuth)
      .annotate(OpenApi.Summary, "Products by id, with their active subscribers and latest round")
  )
  .add(
    HttpApiEndpoint.put("setStock")`/admin/products/${productIdParam}/stock`
      .setPayload(SetStock)
      .addSuccess(Product)
      .addError(ProductNotFound)
      .middleware(AdminAuth)
      .annotate(OpenApi.Summary, "Set the stock")
  )
  .add(
    HttpApiEndpoint.post("adjustStock")`/admin/products/${productIdParam}/stock/adjustments`
      .setPayload(StockAdjustment)
      .addSuccess(Product)
      .addError(ProductNotFound)
      .middleware(AdminAuth)
      .annotate(OpenApi.Summary, "Add to the stock atomically (never below 0)")
  )
  .annotate(OpenApi.Title, "Products")
{}
