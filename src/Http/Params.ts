/**
 * Path and query parameters shared by the endpoint groups. Every id in a path
 * is decimal digits naming a positive safe integer; anything else is 400.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Schema from "effect/Schema"
import { DeliveryId, idFromPath, ProductId, RestockRound, UserId } from "../Domain/Ids.js"

/** One message for every way an id can be wrong (sign, exponent, too large, ...). */
const pathId = <Id extends Schema.Schema<any, number, never>>(id: Id) =>
  idFromPath(id).annotations({
    message: () => ({ message: "expected a positive integer id (1 to 2^53 − 1)", override: true })
  })

export const productIdParam = HttpApiSchema.param("productId", pathId(ProductId))
export const userIdParam = HttpApiSchema.param("userId", pathId(UserId))
export const restockRoundParam = HttpApiSchema.param("restockRound", pathId(RestockRound))

/** Decimal digits from 1 to 1000 (no sign, exponent or fraction): a page size. */
export const PageLimit = Schema.String.pipe(
  Schema.pattern(/^[0-9]{1,4}$/, { message: () => "expected an integer from 1 to 1000" }),
  Schema.compose(Schema.NumberFromString),
  Schema.compose(
    Schema.Int.pipe(
      Schema.between(1, 1000, { message: () => "expected an integer from 1 to 1000" })
    )
  )
).annotations({ identifier: "PageLimit", description: "page size, 1 to 1000" })

export const defaultPageLimit = 100

/** `?afterId=&limit=`: keyset paging by id, as `nextAfterId` of the previous page says. */
export const pageParams = <Id extends Schema.Schema<any, number, never>>(id: Id) =>
  Schema.Struct({
    afterId: Schema.optional(pathId(id)),
    limit: Schema.optionalWith(PageLimit, { default: () => defaultPageLimit })
  })

export const ProductPageParams = pageParams(ProductId)
export const RecipientPageParams = pageParams(DeliveryId)
