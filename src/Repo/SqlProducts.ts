/**
 * The products part of the SQL `Repo` adapter: writing a product and its
 * stock, reading one, and the admin list's pages with each product's active
 * subscribers and latest round.
 */
import type * as Statement from "@effect/sql/Statement"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { ProductNotFound } from "../Domain/Errors.js"
import { clampStock, stockStatusOf } from "../Domain/Product.js"
import type { ProductSummary, RepoShape } from "./Repo.js"
import { CountRow, decodeAll } from "./Rows.js"
import {
  currentTime,
  decodeProducts,
  decodeRounds,
  limitOf,
  orUnavailable,
  productColumns,
  roundColumns,
  type SqlContext
} from "./SqlShared.js"

const decodeCounts = decodeAll(CountRow)

export const makeProducts = (
  { dialect, reads, sql }: SqlContext
): Pick<RepoShape, "upsertProduct" | "getProduct" | "setStock" | "listProducts"> => {
  const at = dialect.timestamp

  /**
   * `stock_status` as SPEC §3.10 has it, from a stock and a minimum that are
   * each the value being written or, when that one is not written, the
   * row's column (which the statement then does not assign, so MySQL's
   * left-to-right assignments and SQLite's old-row reads agree).
   */
  const stockStatusFrom = (stock: number | undefined, minimumStock: number | undefined) =>
    stock !== undefined && minimumStock !== undefined
      ? sql`${stockStatusOf(stock, minimumStock)}`
      : sql`CASE WHEN ${stock ?? sql.literal("stock")} > ${minimumStock ?? sql.literal("minimum_stock")}
          THEN 'IN_STOCK' ELSE 'OUT_OF_STOCK' END`

  const upsertProduct: RepoShape["upsertProduct"] = (id, fields) =>
    Effect.gen(function*() {
      const now = at(yield* currentTime)
      const stock = fields.stock === undefined ? undefined : clampStock(fields.stock)
      const minimumStock = fields.minimumStock === undefined ? undefined : clampStock(fields.minimumStock)
      const changes: Array<Statement.Fragment> = []
      if (fields.name !== undefined) changes.push(sql`name = ${fields.name}`)
      if (stock !== undefined || minimumStock !== undefined) {
        changes.push(sql`stock_status = ${stockStatusFrom(stock, minimumStock)}`)
      }
      if (stock !== undefined) changes.push(sql`stock = ${stock}`)
      if (minimumStock !== undefined) changes.push(sql`minimum_stock = ${minimumStock}`)
      if (fields.notifyPerUnit !== undefined) changes.push(sql`notify_per_unit = ${fields.notifyPerUnit}`)
      if (changes.length > 0) changes.push(sql`updated_at = ${now}`)
      yield* dialect.insertOrUpdate(
        "product",
        sql.insert({
          id,
          name: fields.name ?? `Product ${id}`,
          restock_round: 0,
          stock: stock ?? 0,
          stock_status: stockStatusOf(stock ?? 0, minimumStock ?? 0),
          minimum_stock: minimumStock ?? 0,
          notify_per_unit: fields.notifyPerUnit ?? null,
          created_at: now,
          updated_at: now
        }),
        ["id"],
        changes
      )
      return yield* reads.findProduct(id).pipe(
        Effect.flatMap(Option.match({
          onNone: () => Effect.dieMessage(`product ${id} vanished right after it was written`),
          onSome: Effect.succeed
        }))
      )
    }).pipe(orUnavailable("upsertProduct"))

  const getProduct: RepoShape["getProduct"] = (id) => reads.findProduct(id).pipe(orUnavailable("getProduct"))

  const setStock: RepoShape["setStock"] = (id, requested) =>
    Effect.gen(function*() {
      const stock = clampStock(requested)
      const now = at(yield* currentTime)
      // Against the row's own minimum, in the same statement: no read between that could go stale.
      const result = yield* sql`UPDATE product
        SET stock = ${stock}, stock_status = ${stockStatusFrom(stock, undefined)}, updated_at = ${now}
        WHERE id = ${id}`.raw
      if (dialect.affectedRows(result) === 0) return yield* ProductNotFound.of(id)
      return yield* reads.findProduct(id).pipe(
        Effect.flatMap(Option.match({ onNone: () => Effect.fail(ProductNotFound.of(id)), onSome: Effect.succeed }))
      )
    }).pipe(orUnavailable("setStock"))

  const listProducts: RepoShape["listProducts"] = ({ afterId, limit }) =>
    Effect.gen(function*() {
      const pageSize = limitOf(limit)
      const products = yield* sql`SELECT ${sql.literal(productColumns)} FROM product p
        WHERE p.id > ${afterId ?? 0} ORDER BY p.id LIMIT ${sql.literal(String(pageSize + 1))}`.pipe(
        Effect.flatMap(decodeProducts)
      )
      const page = products.slice(0, pageSize)
      if (page.length === 0) return { items: [], nextAfterId: null }
      const ids = page.map((product) => product.id)
      const counts = yield* sql`SELECT product_id AS productId, COUNT(*) AS count FROM product_user_notification
        WHERE product_id IN ${sql.in(ids)} AND is_active = 1 GROUP BY product_id`.unprepared.pipe(
        Effect.flatMap(decodeCounts)
      )
      // A product's latest round is the one numbered by its `restock_round`:
      // `openRound` bumps one and inserts the other in the same transaction.
      const latestRounds = yield* sql`SELECT ${sql.literal(roundColumns)} FROM product_notification_history h
        JOIN product p ON p.id = h.product_id AND h.restock_round = p.restock_round
        WHERE p.id IN ${sql.in(ids)}`.unprepared.pipe(Effect.flatMap(decodeRounds))
      const countOf = new Map(counts.map((row) => [row.productId, row.count]))
      const roundOf = new Map(latestRounds.map((round) => [round.productId as number, round]))
      const items = page.map((product): ProductSummary => ({
        product,
        activeSubscribers: countOf.get(product.id) ?? 0,
        latestRound: roundOf.get(product.id) ?? null
      }))
      return { items, nextAfterId: products.length > pageSize ? page[page.length - 1]!.id : null }
    }).pipe(orUnavailable("listProducts"))

  return { upsertProduct, getProduct, setStock, listProducts }
}
