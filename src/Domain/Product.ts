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

/** Stock never goes below zero; `stock ≤ 0` is sold out. */
export const Stock = Schema.Int.pipe(
  Schema.greaterThanOrEqualTo(0),
  Schema.lessThanOrEqualTo(maxStock)
).annotations({ identifier: "Stock", description: "an integer from 0 to 2^31 − 1" })

export const stockStatusOf = (stock: number): StockStatus => (stock > 0 ? "IN_STOCK" : "OUT_OF_STOCK")

export class Product extends Schema.Class<Product>("Product")({
  id: ProductId,
  name: Schema.String,
  /** 0 until the first restock; the number of the latest round otherwise. */
  restockRound: Schema.Int.pipe(Schema.greaterThanOrEqualTo(0)),
  stock: Stock,
  stockStatus: StockStatus
}) {}

/** `PUT /admin/products/{id}`: create or update. */
export class ProductUpsert extends Schema.Class<ProductUpsert>("ProductUpsert")({
  name: Schema.optional(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(255))),
  stock: Schema.optional(Stock)
}) {}

