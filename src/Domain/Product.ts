import * as Schema from "effect/Schema"
import { ProductId } from "./Ids.js"

export const StockStatus = Schema.Literal("IN_STOCK", "OUT_OF_STOCK")
export type StockStatus = typeof StockStatus.Type

/** The largest stock the database column (INT) holds. */
export const maxStock = 2_147_483_647

/**
 * Stock as restock keeps it: a whole number from 0 to `maxStock`. A count
 * taken below zero elsewhere (an order system on Redis) reads as 0, sold out.
 */
export const clampStock = (stock: number): number => Math.min(maxStock, Math.max(0, Math.trunc(stock)))

/** Stock never goes below zero; `stock ≤ minimumStock` is sold out. */
export const Stock = Schema.Int.pipe(
  Schema.greaterThanOrEqualTo(0),
  Schema.lessThanOrEqualTo(maxStock)
).annotations({ identifier: "Stock", description: "an integer from 0 to 2^31 − 1" })

/**
 * The product's "new zero" (SPEC §3.10): units held back for returns and
 * damaged goods. Stock at or below it counts as sold out.
 */
export const MinimumStock = Schema.Int.pipe(
  Schema.greaterThanOrEqualTo(0),
  Schema.lessThanOrEqualTo(maxStock)
).annotations({
  identifier: "MinimumStock",
  description: "an integer from 0 to 2^31 − 1: stock at or below it counts as sold out"
})

/**
 * The fair share of scarce stock (SPEC §3.11): subscribers a round notifies
 * per unit above the minimum stock. Bounded by the column (INT) as stock is.
 */
export const NotifyPerUnit = Schema.Int.pipe(
  Schema.greaterThanOrEqualTo(1),
  Schema.lessThanOrEqualTo(maxStock)
).annotations({
  identifier: "NotifyPerUnit",
  description: "an integer from 1 to 2^31 − 1: subscribers a round notifies per unit of stock above the minimum"
})

/** `stock ≤ minimumStock` is sold out: the minimum is the product's zero. */
export const stockStatusOf = (stock: number, minimumStock: number): StockStatus =>
  stock > minimumStock ? "IN_STOCK" : "OUT_OF_STOCK"

export class Product extends Schema.Class<Product>("Product")({
  id: ProductId,
  name: Schema.String,
  /** 0 until the first restock; the number of the latest round otherwise. */
  restockRound: Schema.Int.pipe(Schema.greaterThanOrEqualTo(0)),
  stock: Stock,
  stockStatus: StockStatus,
  minimumStock: MinimumStock,
  /** `null`: no cap, every active subscriber is notified. */
  notifyPerUnit: Schema.NullOr(NotifyPerUnit).annotations({ description: "null: no cap, every active subscriber" })
}) {}

/**
 * `PUT /admin/products/{id}`: create or update. A field left out is left as
 * it is; `notifyPerUnit: null` clears the cap.
 */
export class ProductUpsert extends Schema.Class<ProductUpsert>("ProductUpsert")({
  name: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(255))),
  stock: Schema.optional(Stock),
  minimumStock: Schema.optional(MinimumStock),
  notifyPerUnit: Schema.optional(Schema.NullOr(NotifyPerUnit).annotations({ description: "null clears the cap" }))
}) {}

/** The fields an upsert may change, as the `Repo` takes them. */
export interface ProductFields {
  readonly name?: string | undefined
  readonly stock?: number | undefined
  readonly minimumStock?: number | undefined
  /** `null` clears the cap; `undefined` leaves it as it is. */
  readonly notifyPerUnit?: number | null | undefined
}
