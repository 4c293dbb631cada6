/**
 * What every `Repo` adapter must do, run against MySQL/MariaDB and SQLite.
 *
 * The suite shares one database; each scenario works on products of its own
 * (ids from a counter), so scenarios never see each other's rows. The
 * `SqlClient` beside the `Repo` is for looking at the tables directly.
 */
import { expect, layer } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { Chunk, Effect, Either, Exit, Layer, Option, Stream } from "effect"
import type { DeliveryRecord } from "../../src/Domain/Delivery.js"
import { DeliveryId, ProductId, RestockRound, SubscriptionId, UserId } from "../../src/Domain/Ids.js"
import { dialectOf } from "../../src/Repo/Dialect.js"
import { type Lease, Repo } from "../../src/Repo/Repo.js"
import { countActiveSubscribers, leaseOf as storedLease } from "../support/Stored.js"

const MAX = Number.MAX_SAFE_INTEGER

/** A fixed instant and offsets from it: the Repo takes its round times from the caller. */
const base = Date.UTC(2031, 4, 6, 7, 8, 9, 123)
const at = (offsetMs: number) => new Date(base + offsetMs)
const leaseOf = (owner: string, expiresAt: Date): Lease => ({ owner, expiresAt })

let lastProductId = 0
const nextProductId = () => ProductId.make(++lastProductId)
const user = (id: number) => UserId.make(id)
const round = (n: number) => RestockRound.make(n)
const deliveriesTo = (userIds: ReadonlyArray<number>, sentAt: Date): ReadonlyArray<DeliveryRecord> =>
  userIds.map((id) => ({ userId: user(id), sentAt }))

/** A product with `userIds` subscribed in that order. */
const productWithSubscribers = (userIds: ReadonlyArray<number>, stock = 10) =>
  Effect.gen(function*() {
    const repo = yield* Repo
    const productId = nextProductId()
    yield* repo.upsertProduct(productId, { name: `Lamp ${productId}`, stock })
    for (const id of userIds) yield* repo.subscribe(productId, user(id))
    return productId
  })

/**
 * Records a batch as a dispatcher does, from the round as it stands and with
 * the product's name, and checks that the round it answers (computed, not
 * read back) is the round stored.
 */
const record = (
  productId: ProductId,
  restockRound: RestockRound,
  owner: string,
  batch: { readonly deliveries: ReadonlyArray<DeliveryRecord>; readonly lastSentUserId: UserId | undefined; readonly now: Date }
) =>
  Effect.gen(function*() {
    const repo = yield* Repo
    const current = Option.getOrThrow(yield* repo.getRound(productId, restockRound))
    const product = Option.getOrThrow(yield* repo.getProduct(productId))
    const recorded = yield* repo.recordDeliveries(current, owner, { ...batch, productName: product.name })
    expect({ ...Option.getOrThrow(yield* repo.getRound(productId, restockRound)) }).toEqual({ ...recorded.round })
    return recorded
  })

const count = (query: string, ...params: ReadonlyArray<unknown>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ n: number }>(query, params).pipe(Effect.map((rows) => Number(rows[0]!.n))))

const pendingUserIds = (
  productId: ProductId,
  options: { restockRound: RestockRound; after: SubscriptionId | null; pageSize: number }
) =>
  Effect.flatMap(Repo, (repo) =>
    repo.pendingSubscribers(productId, options).pipe(
      Stream.runCollect,
      Effect.map((subscribers) =>
        Chunk.toReadonlyArray(subscribers).filter((s) => !s.alreadyRecorded).map((s) => s.userId as number)
      )
    ))

export const repoContract = <E>(name: string, repoLayer: Layer.Layer<Repo | SqlClient.SqlClient, E>) =>
  layer(repoLayer, { excludeTestServices: true, timeout: "180 seconds" })(`Repo contract on ${name}`, (it) => {
    it.effect("answers ping", () => Effect.flatMap(Repo, (repo) => repo.ping))

    it.effect("creates a product with defaults, updates the given fields only, and keeps stock_status with stock", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const id = nextProductId()
        const created = yield* repo.upsertProduct(id, {})
        expect({ ...created }).toEqual({
          id,
          name: `Product ${id}`,
          restockRound: 0,
          stock: 0,
          stockStatus: "OUT_OF_STOCK",
          minimumStock: 0,
          notifyPerUnit: null
        })
        expect((yield* repo.upsertProduct(id, { name: "Desk lamp" })).stock).toBe(0)
        const stocked = yield* repo.upsertProduct(id, { stock: 5 })
        expect([stocked.name, stocked.stock, stocked.stockStatus]).toEqual(["Desk lamp", 5, "IN_STOCK"])
        expect(Option.map(yield* repo.getProduct(id), (p) => ({ ...p }))).toEqual(Option.some({ ...stocked }))
        expect(yield* repo.getProduct(nextProductId())).toEqual(Option.none())

        expect((yield* repo.setStock(id, 0)).stockStatus).toBe("OUT_OF_STOCK")
        expect(yield* count("SELECT COUNT(*) AS n FROM product WHERE id = ? AND stock_status = 'OUT_OF_STOCK'", id)).toBe(1)
        const restocked = yield* repo.setStock(id, 3)
        expect([restocked.stock, restocked.stockStatus, restocked.name]).toEqual([3, "IN_STOCK", "Desk lamp"])
        expect(yield* count("SELECT COUNT(*) AS n FROM product WHERE id = ? AND stock_status = 'IN_STOCK'", id)).toBe(1)
        // A count taken below zero elsewhere is sold out, not an invalid row.
        expect((yield* repo.setStock(id, -4)).stock).toBe(0)

        const missing = nextProductId()
        const error = yield* Effect.flip(repo.setStock(missing, 1))
        expect(error._tag).toBe("ProductNotFound")
        expect(yield* repo.getProduct(missing)).toEqual(Option.none())
      }))

    it.effect("minimum stock and the per-unit cap round-trip; a field left out stays, null clears the cap", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const id = nextProductId()
        const created = yield* repo.upsertProduct(id, { name: "Desk lamp", stock: 10, minimumStock: 2, notifyPerUnit: 3 })
        expect([created.minimumStock, created.notifyPerUnit]).toEqual([2, 3])
        expect(Option.map(yield* repo.getProduct(id), (p) => ({ ...p }))).toEqual(Option.some({ ...created }))
        const columns = yield* count(
          "SELECT COUNT(*) AS n FROM product WHERE id = ? AND minimum_stock = 2 AND notify_per_unit = 3",
          id
        )
        expect(columns).toBe(1)

        const renamed = yield* repo.upsertProduct(id, { name: "Floor lamp" })
        expect([renamed.name, renamed.minimumStock, renamed.notifyPerUnit]).toEqual(["Floor lamp", 2, 3])
        const capChanged = yield* repo.upsertProduct(id, { notifyPerUnit: 5 })
        expect([capChanged.minimumStock, capChanged.notifyPerUnit, capChanged.stock]).toEqual([2, 5, 10])
        const uncapped = yield* repo.upsertProduct(id, { notifyPerUnit: null })
        expect([uncapped.minimumStock, uncapped.notifyPerUnit]).toEqual([2, null])
        expect(yield* count("SELECT COUNT(*) AS n FROM product WHERE id = ? AND notify_per_unit IS NULL", id)).toBe(1)
        const noMinimum = yield* repo.upsertProduct(id, { minimumStock: 0 })
        expect([noMinimum.minimumStock, noMinimum.notifyPerUnit, noMinimum.name]).toEqual([0, null, "Floor lamp"])

        // Setting stock leaves both alone.
        const restocked = yield* repo.setStock(id, 4)
        expect([restocked.minimumStock, restocked.notifyPerUnit]).toEqual([0, null])

        const listed = yield* repo.listProducts({ afterId: ProductId.make(id - 1), limit: 1 })
        expect({ ...listed.items[0]!.product }).toEqual({ ...restocked })
      }))

    it.effect("stock_status follows the minimum stock: stock at or below it is OUT_OF_STOCK, in the row too", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const id = nextProductId()
        const status = Effect.flatMap(SqlClient.SqlClient, (sql) =>
          sql<{ status: string }>`SELECT stock_status AS status FROM product WHERE id = ${id}`.pipe(
            Effect.map((rows) => rows[0]!.status)
          ))
        const created = yield* repo.upsertProduct(id, { stock: 3, minimumStock: 3 })
        expect(created.stockStatus).toBe("OUT_OF_STOCK")
        expect(yield* status).toBe("OUT_OF_STOCK")

        // Stock written alone is judged against the row's minimum.
        expect((yield* repo.setStock(id, 4)).stockStatus).toBe("IN_STOCK")
        expect(yield* status).toBe("IN_STOCK")
        expect((yield* repo.setStock(id, 3)).stockStatus).toBe("OUT_OF_STOCK")
        expect(yield* status).toBe("OUT_OF_STOCK")
        expect((yield* repo.upsertProduct(id, { stock: 5 })).stockStatus).toBe("IN_STOCK")
        expect(yield* status).toBe("IN_STOCK")

        // A minimum written alone is judged against the row's stock (5), either way.
        expect((yield* repo.upsertProduct(id, { minimumStock: 5 })).stockStatus).toBe("OUT_OF_STOCK")
        expect(yield* status).toBe("OUT_OF_STOCK")
        expect((yield* repo.upsertProduct(id, { minimumStock: 4 })).stockStatus).toBe("IN_STOCK")
        expect(yield* status).toBe("IN_STOCK")

        // Both at once: the new values, not the row's.
        const both = yield* repo.upsertProduct(id, { stock: 1, minimumStock: 0 })
        expect([both.stock, both.minimumStock, both.stockStatus]).toEqual([1, 0, "IN_STOCK"])
        expect(yield* status).toBe("IN_STOCK")
        const held = yield* repo.upsertProduct(id, { stock: 7, minimumStock: 7 })
        expect(held.stockStatus).toBe("OUT_OF_STOCK")
        expect(yield* status).toBe("OUT_OF_STOCK")

        // A name or a cap alone does not touch the status.
        expect((yield* repo.upsertProduct(id, { name: "Lamp", notifyPerUnit: 2 })).stockStatus).toBe("OUT_OF_STOCK")
        expect(yield* status).toBe("OUT_OF_STOCK")
      }))

    it.effect("lists products by id in pages, each with its active subscribers and its latest round", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        // Ids above every other scenario's, so that the pages hold these only.
        const [first, second, third] = [MAX - 100, MAX - 99, MAX - 98].map((id) => ProductId.make(id))
        for (const id of [first!, second!, third!]) yield* repo.upsertProduct(id, { stock: 1 })
        for (const id of [1, 2, 3]) yield* repo.subscribe(first!, user(id))
        yield* repo.unsubscribe(first!, user(2))
        yield* repo.subscribe(second!, user(9))
        yield* repo.openRound(second!, leaseOf("a", at(60_000)), at(0))
        yield* repo.finishRound(second!, round(1), "a", { status: "COMPLETED", error: null, now: at(1_000) })
        yield* repo.openRound(third!, leaseOf("b", at(60_000)), at(0))
        yield* repo.finishRound(third!, round(1), "b", { status: "CANCELED_BY_SOLD_OUT", error: null, now: at(1_000) })
        yield* repo.openRound(third!, leaseOf("c", at(60_000)), at(2_000))

        const page1 = yield* repo.listProducts({ afterId: ProductId.make(MAX - 101), limit: 2 })
        expect(page1.items.map((item) => item.product.id)).toEqual([first, second])
        expect(page1.items.map((item) => item.activeSubscribers)).toEqual([2, 1])
        expect(page1.items[0]!.latestRound).toBeNull()
        expect(page1.items[1]!.latestRound).toMatchObject({ restockRound: 1, status: "COMPLETED" })
        expect(page1.nextAfterId).toBe(second)

        const page2 = yield* repo.listProducts({ afterId: ProductId.make(page1.nextAfterId!), limit: 2 })
        expect(page2.items[0]!.product.id).toBe(third)
        expect(page2.items[0]!.product.restockRound).toBe(2)
        expect(page2.items[0]!.latestRound).toMatchObject({ restockRound: 2, status: "IN_PROGRESS" })

        expect(yield* repo.listProducts({ afterId: ProductId.make(MAX), limit: 10 })).toEqual({ items: [], nextAfterId: null })
      }))

    it.effect("subscribing is idempotent: one row, one place, still active", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([])
        const first = yield* repo.subscribe(productId, user(7))
        const again = yield* repo.subscribe(productId, user(7))
        expect(first.active).toBe(true)
        expect({ ...again }).toEqual({ ...first })
        expect(yield* count("SELECT COUNT(*) AS n FROM product_user_notification WHERE product_id = ?", productId)).toBe(1)
        expect(yield* countActiveSubscribers(productId)).toBe(1)
        expect(Option.isSome(yield* repo.subscriptionIdOf(productId, user(7)))).toBe(true)
        expect(yield* repo.subscriptionIdOf(productId, user(8))).toEqual(Option.none())

        // Unsubscribing someone who never subscribed is not an error; an unknown product is.
        yield* repo.unsubscribe(productId, user(8))
        const unknown = nextProductId()
        expect((yield* Effect.flip(repo.subscribe(unknown, user(7))))._tag).toBe("ProductNotFound")
        expect((yield* Effect.flip(repo.unsubscribe(unknown, user(7))))._tag).toBe("ProductNotFound")
      }))

    it.effect("a user who unsubscribes and subscribes again keeps their place in the order", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([31, 32, 33])
        const place = yield* repo.subscriptionIdOf(productId, user(31))
        const restockRound = round(1)

        yield* repo.unsubscribe(productId, user(31))
        yield* repo.unsubscribe(productId, user(31))
        expect(yield* countActiveSubscribers(productId)).toBe(2)
        expect(yield* pendingUserIds(productId, { restockRound, after: null, pageSize: 10 })).toEqual([32, 33])

        yield* repo.subscribe(productId, user(34))
        const back = yield* repo.subscribe(productId, user(31))
        expect(back.active).toBe(true)
        expect(yield* repo.subscriptionIdOf(productId, user(31))).toEqual(place)
        expect(yield* pendingUserIds(productId, { restockRound, after: null, pageSize: 2 })).toEqual([31, 32, 33, 34])
        expect(yield* count("SELECT COUNT(*) AS n FROM product_user_notification WHERE product_id = ?", productId)).toBe(4)
      }))

    it.scoped("pending subscribers are read page by page, only as the consumer pulls", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const userIds = Array.from({ length: 15 }, (_, i) => 100 + i)
        const productId = yield* productWithSubscribers(userIds)
        const pull = yield* Stream.toPull(repo.pendingSubscribers(productId, { restockRound: round(1), after: null, pageSize: 10 }))

        const firstPage = yield* pull
        expect(Chunk.toReadonlyArray(firstPage).map((s) => s.userId)).toEqual(userIds.slice(0, 10))
        // Had the stream read ahead, this late subscriber would be missing from the second page.
        yield* repo.subscribe(productId, user(200))
        const secondPage = yield* pull
        expect(Chunk.toReadonlyArray(secondPage).map((s) => s.userId)).toEqual([...userIds.slice(10), 200])
        expect(Exit.isFailure(yield* Effect.exit(pull))).toBe(true)
      }))

    it.effect("pending subscribers start after a position and flag users who already have a record of the round", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([1, 2, 3, 4, 5, 6])
        const opened = yield* repo.openRound(productId, leaseOf("owner", at(60_000)), at(0))
        yield* record(productId, opened.restockRound, "owner", {
          deliveries: deliveriesTo([2, 4], at(10)),
          lastSentUserId: undefined,
          now: at(10)
        })
        const restockRound = opened.restockRound
        const flagged = yield* repo.pendingSubscribers(productId, { restockRound, after: null, pageSize: 2 }).pipe(
          Stream.runCollect,
          Effect.map(Chunk.map((s) => [s.userId as number, s.alreadyRecorded] as const)),
          Effect.map(Chunk.toReadonlyArray)
        )
        expect(flagged).toEqual([[1, false], [2, true], [3, false], [4, true], [5, false], [6, false]])
        expect(yield* pendingUserIds(productId, { restockRound, after: null, pageSize: 2 })).toEqual([1, 3, 5, 6])
        const third = Option.getOrThrow(yield* repo.subscriptionIdOf(productId, user(3)))
        expect(yield* pendingUserIds(productId, { restockRound, after: third, pageSize: 2 })).toEqual([5, 6])
        // Records of another round do not count.
        expect(yield* pendingUserIds(productId, { restockRound: round(2), after: null, pageSize: 100 })).toEqual([
          1,
          2,
          3,
          4,
          5,
          6
        ])
      }))

    it.effect("of 20 concurrent openRound calls for one product exactly one opens the round", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([1])
        const outcomes = yield* Effect.all(
          Array.from({ length: 20 }, (_, i) =>
            Effect.either(repo.openRound(productId, leaseOf(`dispatcher-${i}`, at(60_000)), at(i)))),
          { concurrency: "unbounded" }
        )
        const opened = outcomes.filter(Either.isRight).map((outcome) => outcome.right)
        const refused = outcomes.filter(Either.isLeft).map((outcome) => outcome.left)
        expect(opened).toHaveLength(1)
        expect(opened[0]).toMatchObject({ restockRound: 1, status: "IN_PROGRESS", sentCount: 0, lastSentUserId: null })
        expect(refused).toHaveLength(19)
        for (const error of refused) expect(error).toMatchObject({ _tag: "RoundInProgress", restockRound: 1 })

        // The losers' increments were rolled back.
        expect(Option.getOrThrow(yield* repo.getProduct(productId)).restockRound).toBe(1)
        expect(yield* count("SELECT COUNT(*) AS n FROM product_notification_history WHERE product_id = ?", productId)).toBe(1)
        expect(Option.map(yield* repo.getRound(productId, round(1)), (r) => ({ ...r }))).toEqual(Option.some({ ...opened[0]! }))

        const owner = Option.getOrThrow(yield* storedLease(productId, round(1))).owner
        yield* repo.finishRound(productId, round(1), owner, { status: "COMPLETED", error: null, now: at(100) })
        const next = yield* repo.openRound(productId, leaseOf("next", at(60_000)), at(200))
        expect(next.restockRound).toBe(2)
        expect((yield* repo.listRounds(productId)).map((r) => [r.restockRound, r.status])).toEqual([
          [2, "IN_PROGRESS"],
          [1, "COMPLETED"]
        ])
        expect(Option.map(yield* repo.latestRound(productId), (r) => r.restockRound)).toEqual(Option.some(2))
      }))

    it.effect("opening a round of an unknown product fails with ProductNotFound and changes nothing", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = nextProductId()
        const error = yield* Effect.flip(repo.openRound(productId, leaseOf("x", at(1)), at(0)))
        expect(error._tag).toBe("ProductNotFound")
        expect(yield* repo.latestRound(productId)).toEqual(Option.none())
        expect(yield* repo.listRounds(productId)).toEqual([])
      }))

    it.effect("recording is idempotent: a user recorded twice has one row and counts once", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([1, 2, 3, 4])
        const { restockRound } = yield* repo.openRound(productId, leaseOf("owner", at(60_000)), at(0))

        const first = yield* record(productId, restockRound, "owner", {
          deliveries: [{ userId: user(1), sentAt: at(11) }, { userId: user(2), sentAt: at(12) }],
          lastSentUserId: user(2),
          now: at(20)
        })
        expect(first.deliveries.map((d) => [d.userId, d.productId, d.productName, d.restockRound, d.sentAt])).toEqual([
          [1, productId, `Lamp ${productId}`, 1, at(11)],
          [2, productId, `Lamp ${productId}`, 1, at(12)]
        ])
        expect(first.deliveries[0]!.id).toBeLessThan(first.deliveries[1]!.id)
        expect(first.round).toMatchObject({ sentCount: 2, lastSentUserId: 2, updatedAt: at(20), status: "IN_PROGRESS" })

        const second = yield* record(productId, restockRound, "owner", {
          deliveries: [{ userId: user(2), sentAt: at(30) }, { userId: user(3), sentAt: at(31) }, {
            userId: user(3),
            sentAt: at(32)
          }],
          lastSentUserId: undefined,
          now: at(40)
        })
        // User 2's row is the one recorded first, not a second one.
        expect(second.deliveries.map((d) => [d.id, d.userId, d.sentAt])).toEqual([
          [first.deliveries[1]!.id, 2, at(12)],
          [second.deliveries[1]!.id, 3, at(31)]
        ])
        expect(second.round).toMatchObject({ sentCount: 3, lastSentUserId: 2, updatedAt: at(40) })
        expect(
          yield* count("SELECT COUNT(*) AS n FROM product_user_notification_history WHERE product_id = ?", productId)
        ).toBe(3)

        const empty = yield* record(productId, restockRound, "owner", {
          deliveries: [],
          lastSentUserId: user(3),
          now: at(50)
        })
        expect(empty.deliveries).toEqual([])
        expect(empty.round).toMatchObject({ sentCount: 3, lastSentUserId: 3 })
      }))

    it.effect("a batch recorded again from the round before it (a retry whose answer was lost) changes nothing, and answers the round as stored", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([1, 2, 3])
        const opened = yield* repo.openRound(productId, leaseOf("owner", at(60_000)), at(0))
        const batch = { deliveries: deliveriesTo([1, 2], at(5)), lastSentUserId: user(2), now: at(6), productName: "Lamp" }
        const first = yield* repo.recordDeliveries(opened, "owner", batch)
        const again = yield* repo.recordDeliveries(opened, "owner", { ...batch, now: at(7) })
        const stored = Option.getOrThrow(yield* repo.getRound(productId, opened.restockRound))
        expect(stored).toMatchObject({ sentCount: 2, lastSentUserId: 2, updatedAt: at(7) })
        expect({ ...again.round }).toEqual({ ...stored })
        expect(again.deliveries.map((d) => d.id)).toEqual(first.deliveries.map((d) => d.id))
      }))

    it.effect("records a batch of 1,500 in one call", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([])
        const { restockRound } = yield* repo.openRound(productId, leaseOf("owner", at(60_000)), at(0))
        const userIds = Array.from({ length: 1_500 }, (_, i) => 10_000 + i)
        const recorded = yield* record(productId, restockRound, "owner", {
          deliveries: deliveriesTo(userIds, at(5)),
          lastSentUserId: user(11_499),
          now: at(6)
        })
        expect(recorded.round.sentCount).toBe(1_500)
        expect(recorded.deliveries.map((d) => d.userId)).toEqual(userIds)
        const ids = recorded.deliveries.map((d) => d.id)
        expect([...ids].sort((a, b) => a - b)).toEqual(ids)
      }))

    it.effect("a dispatcher that does not hold the lease gets LeaseLost and writes nothing", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([1, 2])
        const { restockRound } = yield* repo.openRound(productId, leaseOf("owner", at(60_000)), at(0))

        const lost = yield* Effect.flip(record(productId, restockRound, "intruder", {
          deliveries: deliveriesTo([1, 2], at(1)),
          lastSentUserId: user(2),
          now: at(1)
        }))
        expect(lost).toMatchObject({ _tag: "LeaseLost", productId, restockRound })
        expect(
          yield* count("SELECT COUNT(*) AS n FROM product_user_notification_history WHERE product_id = ?", productId)
        ).toBe(0)
        expect(Option.getOrThrow(yield* repo.getRound(productId, restockRound))).toMatchObject({
          sentCount: 0,
          lastSentUserId: null,
          updatedAt: at(0)
        })
        expect((yield* Effect.flip(repo.renewLease(productId, restockRound, leaseOf("intruder", at(90_000)))))._tag)
          .toBe("LeaseLost")
        expect(
          (yield* Effect.flip(repo.finishRound(productId, restockRound, "intruder", {
            status: "COMPLETED",
            error: null,
            now: at(2)
          })))._tag
        ).toBe("LeaseLost")
        expect(Option.getOrThrow(yield* storedLease(productId, restockRound))).toEqual(leaseOf("owner", at(60_000)))

        // Once finished, even the owner can no longer write.
        yield* repo.finishRound(productId, restockRound, "owner", { status: "COMPLETED", error: null, now: at(3) })
        expect(
          (yield* Effect.flip(record(productId, restockRound, "owner", {
            deliveries: deliveriesTo([1], at(4)),
            lastSentUserId: undefined,
            now: at(4)
          })))._tag
        ).toBe("LeaseLost")
        expect((yield* Effect.flip(repo.renewLease(productId, restockRound, leaseOf("owner", at(90_000)))))._tag)
          .toBe("LeaseLost")
      }))

    it.effect("renewing the lease moves its expiry; renewing to the same expiry still holds", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([1])
        const { restockRound } = yield* repo.openRound(productId, leaseOf("owner", at(10_000)), at(0))
        yield* repo.renewLease(productId, restockRound, leaseOf("owner", at(20_000)))
        expect(yield* storedLease(productId, restockRound)).toEqual(Option.some(leaseOf("owner", at(20_000))))
        yield* repo.renewLease(productId, restockRound, leaseOf("owner", at(20_000)))
        expect(yield* storedLease(productId, round(restockRound + 1))).toEqual(Option.none())
      }))

    it.effect("finishing a round sets its status, finished_at and error, and clears the lease", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([1])
        const { restockRound } = yield* repo.openRound(productId, leaseOf("owner", at(60_000)), at(0))
        const finished = yield* repo.finishRound(productId, restockRound, "owner", {
          status: "CANCELED_BY_ERROR",
          error: "sender answered 400",
          now: at(5_000)
        })
        expect({ ...finished }).toEqual({
          productId,
          restockRound,
          status: "CANCELED_BY_ERROR",
          lastSentUserId: null,
          sentCount: 0,
          startedAt: at(0),
          updatedAt: at(5_000),
          finishedAt: at(5_000),
          error: "sender answered 400",
          waitingUntil: null
        })
        expect(yield* storedLease(productId, restockRound)).toEqual(Option.none())
        expect(
          yield* count(
            "SELECT COUNT(*) AS n FROM product_notification_history WHERE product_id = ? AND lease_owner IS NULL AND lease_expires_at IS NULL",
            productId
          )
        ).toBe(1)
      }))

    it.effect("a round opened waiting for the send window reads waitingUntil everywhere a round is read", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([1])
        const opened = yield* repo.openRound(productId, leaseOf("owner", at(60_000)), at(0), { waitingUntil: at(3_600_000) })
        expect(opened.waitingUntil).toEqual(at(3_600_000))
        const stored = Option.getOrThrow(yield* repo.getRound(productId, opened.restockRound))
        expect({ ...stored }).toEqual({ ...opened })
        expect(Option.getOrThrow(yield* repo.latestRound(productId)).waitingUntil).toEqual(at(3_600_000))
        expect((yield* repo.listRounds(productId)).map((r) => r.waitingUntil)).toEqual([at(3_600_000)])
        const listed = yield* repo.listProducts({ afterId: ProductId.make(productId - 1), limit: 1 })
        expect(listed.items[0]!.latestRound?.waitingUntil).toEqual(at(3_600_000))

        // Opened without one, a round is not waiting.
        const other = yield* productWithSubscribers([1])
        expect((yield* repo.openRound(other, leaseOf("owner", at(60_000)), at(0))).waitingUntil).toBeNull()
        expect(Option.getOrThrow(yield* repo.latestRound(other)).waitingUntil).toBeNull()
      }))

    it.effect("setWaitingUntil sets and clears the wait under the lease only; finishing a round clears it", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([1, 2])
        const { restockRound } = yield* repo.openRound(productId, leaseOf("owner", at(60_000)), at(0))

        const waiting = yield* repo.setWaitingUntil(productId, restockRound, "owner", at(7_200_000), at(10))
        expect(waiting).toMatchObject({ status: "IN_PROGRESS", waitingUntil: at(7_200_000), updatedAt: at(10) })
        expect({ ...Option.getOrThrow(yield* repo.getRound(productId, restockRound)) }).toEqual({ ...waiting })

        // Another dispatcher changes nothing.
        const lost = yield* Effect.flip(repo.setWaitingUntil(productId, restockRound, "intruder", null, at(20)))
        expect(lost).toMatchObject({ _tag: "LeaseLost", productId, restockRound })
        expect(Option.getOrThrow(yield* repo.getRound(productId, restockRound))).toMatchObject({
          waitingUntil: at(7_200_000),
          updatedAt: at(10)
        })

        // Recording from the round it answered keeps the wait in the round computed.
        const recorded = yield* record(productId, restockRound, "owner", {
          deliveries: deliveriesTo([1], at(30)),
          lastSentUserId: user(1),
          now: at(30)
        })
        expect(recorded.round.waitingUntil).toEqual(at(7_200_000))

        const resumed = yield* repo.setWaitingUntil(productId, restockRound, "owner", null, at(40))
        expect(resumed).toMatchObject({ waitingUntil: null, updatedAt: at(40), sentCount: 1 })
        yield* repo.setWaitingUntil(productId, restockRound, "owner", at(9_000_000), at(50))

        const finished = yield* repo.finishRound(productId, restockRound, "owner", {
          status: "CANCELED_BY_ERROR",
          error: "shutdown",
          now: at(60)
        })
        expect(finished.waitingUntil).toBeNull()
        expect(
          yield* count(
            "SELECT COUNT(*) AS n FROM product_notification_history WHERE product_id = ? AND waiting_until IS NULL",
            productId
          )
        ).toBe(1)
        // Finished, the round is no one's to set waiting.
        const after = yield* Effect.flip(repo.setWaitingUntil(productId, restockRound, "owner", at(1), at(70)))
        expect(after._tag).toBe("LeaseLost")

        // A resume replaces the wait: the new dispatcher's, or none.
        const reopened = yield* repo.reopenRound(productId, leaseOf("second", at(90_000)), at(80), {
          waitingUntil: at(10_000_000)
        })
        expect(reopened.waitingUntil).toEqual(at(10_000_000))
        yield* repo.finishRound(productId, restockRound, "second", { status: "CANCELED_BY_ERROR", error: "x", now: at(90) })
        expect((yield* repo.reopenRound(productId, leaseOf("third", at(90_000)), at(100))).waitingUntil).toBeNull()
      }))

    it.effect("a resume of a crashed waiting round does not keep the crashed dispatcher's wait", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([1])
        const { restockRound } = yield* repo.openRound(productId, leaseOf("crashed", at(10_000)), at(0), {
          waitingUntil: at(3_600_000)
        })
        const resumed = yield* repo.reopenRound(productId, leaseOf("rescuer", at(40_000)), at(10_001))
        expect(resumed).toMatchObject({ restockRound, status: "IN_PROGRESS", waitingUntil: null })
      }))

    it.effect("a round canceled by an error is resumed: the same round, in progress again, its progress kept", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([1, 2, 3])
        const { restockRound } = yield* repo.openRound(productId, leaseOf("first", at(60_000)), at(0))
        yield* record(productId, restockRound, "first", {
          deliveries: deliveriesTo([1], at(1)),
          lastSentUserId: user(1),
          now: at(1)
        })
        yield* repo.finishRound(productId, restockRound, "first", { status: "CANCELED_BY_ERROR", error: "boom", now: at(2) })

        const resumed = yield* repo.reopenRound(productId, leaseOf("second", at(90_000)), at(3))
        expect({ ...resumed }).toEqual({
          productId,
          restockRound,
          status: "IN_PROGRESS",
          lastSentUserId: 1,
          sentCount: 1,
          startedAt: at(0),
          updatedAt: at(3),
          finishedAt: null,
          error: null,
          waitingUntil: null
        })
        expect(yield* storedLease(productId, restockRound)).toEqual(Option.some(leaseOf("second", at(90_000))))
        expect(Option.getOrThrow(yield* repo.getProduct(productId)).restockRound).toBe(restockRound)
        // The previous dispatcher is fenced out.
        expect((yield* Effect.flip(repo.renewLease(productId, restockRound, leaseOf("first", at(99_000)))))._tag).toBe(
          "LeaseLost"
        )
      }))

    it.effect("a completed or sold-out round is not resumed", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        for (const status of ["COMPLETED", "CANCELED_BY_SOLD_OUT"] as const) {
          const productId = yield* productWithSubscribers([1])
          const { restockRound } = yield* repo.openRound(productId, leaseOf("owner", at(60_000)), at(0))
          yield* repo.finishRound(productId, restockRound, "owner", { status, error: null, now: at(1) })
          const refused = yield* Effect.flip(repo.reopenRound(productId, leaseOf("again", at(90_000)), at(2)))
          expect(refused._tag).toBe("NothingToResume")
          expect(refused.message).toMatch(status === "COMPLETED" ? /completed/ : /sold out/)
          expect(Option.getOrThrow(yield* repo.getRound(productId, restockRound)).status).toBe(status)
        }
      }))

    it.effect("a round in progress is resumed only once its lease has expired", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([1])
        const { restockRound } = yield* repo.openRound(productId, leaseOf("crashed", at(10_000)), at(0))

        const stillRunning = yield* Effect.flip(repo.reopenRound(productId, leaseOf("rescuer", at(40_000)), at(9_999)))
        expect(stillRunning._tag).toBe("NothingToResume")
        expect(stillRunning.message).toMatch(/still being sent/)
        expect(yield* storedLease(productId, restockRound)).toEqual(Option.some(leaseOf("crashed", at(10_000))))

        const resumed = yield* repo.reopenRound(productId, leaseOf("rescuer", at(40_000)), at(10_001))
        expect(resumed).toMatchObject({ restockRound, status: "IN_PROGRESS", updatedAt: at(10_001) })
        expect(yield* storedLease(productId, restockRound)).toEqual(Option.some(leaseOf("rescuer", at(40_000))))
        expect(
          (yield* Effect.flip(record(productId, restockRound, "crashed", {
            deliveries: deliveriesTo([1], at(10_002)),
            lastSentUserId: user(1),
            now: at(10_002)
          })))._tag
        ).toBe("LeaseLost")
      }))

    it.effect("of concurrent resumes of one round exactly one wins", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([1])
        const { restockRound } = yield* repo.openRound(productId, leaseOf("owner", at(60_000)), at(0))
        yield* repo.finishRound(productId, restockRound, "owner", { status: "CANCELED_BY_ERROR", error: "x", now: at(1) })
        const outcomes = yield* Effect.all(
          Array.from({ length: 10 }, (_, i) => Effect.either(repo.reopenRound(productId, leaseOf(`r${i}`, at(90_000)), at(2)))),
          { concurrency: "unbounded" }
        )
        expect(outcomes.filter(Either.isRight)).toHaveLength(1)
        for (const outcome of outcomes.filter(Either.isLeft)) expect(outcome.left._tag).toBe("NothingToResume")
      }))

    it.effect("nothing to resume for a product never restocked; ProductNotFound for an unknown one", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([1])
        expect((yield* Effect.flip(repo.reopenRound(productId, leaseOf("x", at(1)), at(0))))._tag).toBe("NothingToResume")
        expect((yield* Effect.flip(repo.reopenRound(nextProductId(), leaseOf("x", at(1)), at(0))))._tag).toBe(
          "ProductNotFound"
        )
      }))

    it.effect("a round's recipients come in send order, in pages ending with nextAfterId null", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const productId = yield* productWithSubscribers([5, 4, 3, 2, 1])
        const { restockRound } = yield* repo.openRound(productId, leaseOf("owner", at(60_000)), at(0))
        for (const id of [5, 4, 3, 2, 1]) {
          yield* record(productId, restockRound, "owner", {
            deliveries: deliveriesTo([id], at(100 - id)),
            lastSentUserId: user(id),
            now: at(100)
          })
        }
        const page1 = yield* repo.recipients(productId, restockRound, { afterId: null, limit: 2 })
        expect(page1.items.map((r) => [r.userId, r.sentAt])).toEqual([[5, at(95)], [4, at(96)]])
        expect(page1.nextAfterId).not.toBeNull()
        const page2 = yield* repo.recipients(productId, restockRound, { afterId: DeliveryId.make(page1.nextAfterId!), limit: 2 })
        expect(page2.items.map((r) => r.userId)).toEqual([3, 2])
        const page3 = yield* repo.recipients(productId, restockRound, { afterId: DeliveryId.make(page2.nextAfterId!), limit: 2 })
        expect(page3).toMatchObject({ items: [{ userId: 1 }], nextAfterId: null })
        // A page that ends exactly at the last recipient says so too.
        expect((yield* repo.recipients(productId, restockRound, { afterId: null, limit: 5 })).nextAfterId).toBeNull()
        expect(yield* repo.recipients(productId, round(restockRound + 1), { afterId: null, limit: 5 })).toEqual({
          items: [],
          nextAfterId: null
        })
      }))

    it.effect("a user's deliveries after an id come in id order with the product's name", () =>
      Effect.gen(function*() {
        const repo = yield* Repo
        const someone = user(4_242_424)
        const products = [yield* productWithSubscribers([someone]), yield* productWithSubscribers([someone])]
        for (const [i, productId] of products.entries()) {
          const { restockRound } = yield* repo.openRound(productId, leaseOf("owner", at(60_000)), at(0))
          yield* record(productId, restockRound, "owner", {
            deliveries: deliveriesTo([someone], at(i)),
            lastSentUserId: someone,
            now: at(i)
          })
        }
        const all = yield* repo.deliveriesOfUser(someone, { afterId: null, limit: 10 })
        expect(all.map((d) => [d.productId, d.productName, d.restockRound, d.sentAt])).toEqual([
          [products[0], `Lamp ${products[0]}`, 1, at(0)],
          [products[1], `Lamp ${products[1]}`, 1, at(1)]
        ])
        expect((yield* repo.deliveriesOfUser(someone, { afterId: all[0]!.id, limit: 10 })).map((d) => d.id)).toEqual([
          all[1]!.id
        ])
        expect(yield* repo.deliveriesOfUser(someone, { afterId: null, limit: 1 })).toHaveLength(1)
        expect(yield* repo.deliveriesOfUser(someone, { afterId: all[1]!.id, limit: 10 })).toEqual([])
      }))

    it.effect("ids up to 2^53 − 1 round-trip exactly", () =>
      // A database of its own: the auto-increment counters end up near the top.
      Effect.gen(function*() {
        const repo = yield* Repo
        const sql = yield* SqlClient.SqlClient
        const time = dialectOf(sql).timestamp(at(0))
        const productId = ProductId.make(MAX)
        const someone = user(MAX)
        yield* repo.upsertProduct(productId, { name: "Top", stock: 1 })
        // Rows placed just below the top, so that the next ids are 2^53 − 4 and up.
        yield* sql`INSERT INTO product_user_notification ${
          sql.insert({ id: MAX - 5, product_id: productId, user_id: 1, is_active: 0, created_at: time, updated_at: time })
        }`
        yield* sql`INSERT INTO product_user_notification_history ${
          sql.insert({ id: MAX - 5, product_id: 1, user_id: 1, restock_round: 1, sent_at: time })
        }`

        yield* repo.subscribe(productId, someone)
        const place = Option.getOrThrow(yield* repo.subscriptionIdOf(productId, someone))
        expect(place).toBe(MAX - 4)
        expect(yield* pendingUserIds(productId, { restockRound: round(1), after: null, pageSize: 10 })).toEqual([MAX])

        const opened = yield* repo.openRound(productId, leaseOf("owner", at(60_000)), at(0))
        const recorded = yield* record(productId, opened.restockRound, "owner", {
          deliveries: deliveriesTo([someone], at(1)),
          lastSentUserId: someone,
          now: at(1)
        })
        expect(recorded.deliveries.map((d) => [d.id, d.userId, d.productId])).toEqual([[MAX - 4, MAX, MAX]])
        expect(recorded.round.lastSentUserId).toBe(MAX)
        expect(yield* repo.recipients(productId, opened.restockRound, { afterId: null, limit: 10 })).toMatchObject({
          items: [{ userId: MAX }],
          nextAfterId: null
        })
        expect((yield* repo.deliveriesOfUser(someone, { afterId: DeliveryId.make(MAX - 5), limit: 10 })).map((d) => d.id))
          .toEqual([MAX - 4])
        expect(Option.getOrThrow(yield* repo.getProduct(productId)).id).toBe(MAX)
        expect((yield* repo.listProducts({ afterId: ProductId.make(MAX - 1), limit: 1 })).items.map((i) => i.product.id))
          .toEqual([MAX])
      }).pipe(Effect.provide(repoLayer)))
  })
