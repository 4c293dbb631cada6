/**
 * The rows the Repo reads, as schemas, and their decoding. Rows that do not
 * decode are a bug (or a hand-edited database), not an outage: decoding
 * dies, naming what is wrong.
 *
 * The two rows read per subscriber (a page of the subscribers to send to,
 * the delivery rows an insert answers) are checked and converted by hand
 * when they have the shape the driver usually gives, and decoded by their
 * schema otherwise, which then says what is wrong. The schema's decoding of a
 * 500-row page took 3–12 ms of one event-loop turn until the code warmed up
 * (measured): enough for the sends behind it to miss their rate-limit slots.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { Delivery } from "../Domain/Delivery.js"
import { DeliveryId, SubscriptionId, UserId } from "../Domain/Ids.js"
import { Round } from "../Domain/Round.js"
import { Subscription, type Subscriber } from "../Domain/Subscription.js"

/** mysql2 reads DATETIME as a `Date`; SQLite keeps ISO-8601 text. */
export const Timestamp = Schema.Union(Schema.DateFromSelf, Schema.Date)

/** Booleans are stored as 0/1 on both. */
export const Flag = Schema.transform(Schema.Literal(0, 1), Schema.Boolean, {
  strict: true,
  decode: (flag) => flag === 1,
  encode: (active) => (active ? 1 : 0)
})

export const RoundRow = Schema.Struct({
  ...Round.fields,
  startedAt: Timestamp,
  updatedAt: Timestamp,
  finishedAt: Schema.NullOr(Timestamp),
  waitingUntil: Schema.NullOr(Timestamp)
})
export const DeliveryRow = Schema.Struct({ ...Delivery.fields, sentAt: Timestamp })
/** A delivery row as an insert answers it, or as a round's recipients list it. */
export const RecipientRow = Schema.Struct({ id: DeliveryId, userId: UserId, sentAt: Timestamp })
export type RecipientRow = typeof RecipientRow.Type
export const SubscriptionRow = Schema.Struct({ ...Subscription.fields, active: Flag, subscribedAt: Timestamp })
export const SubscriberRow = Schema.Struct({ subscriptionId: SubscriptionId, userId: UserId, alreadyRecorded: Flag })
export const LeaseRow = Schema.Struct({ owner: Schema.String, expiresAt: Timestamp })
export const CountRow = Schema.Struct({ productId: Schema.Number, count: Schema.NonNegativeInt })
export const RestockRoundRow = Schema.Struct({ restockRound: Schema.NonNegativeInt })

export const decodeAll = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = Schema.decodeUnknown(Schema.Array(schema))
  return (rows: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<A>> => Effect.orDie(decode(rows))
}

export const decodeFirst = <A, I>(schema: Schema.Schema<A, I>) => {
  const decode = decodeAll(schema)
  return (rows: ReadonlyArray<unknown>): Effect.Effect<Option.Option<A>> =>
    Effect.map(decode(rows.slice(0, 1)), (decoded) => Option.fromNullable(decoded[0]))
}

/**
 * `decodeAll(schema)`, with `fast` tried first on every row: it answers the
 * decoded row, or `undefined` for a row it does not vouch for, and then the
 * schema decodes them all.
 */
export const decodeAllFast = <A, I>(
  schema: Schema.Schema<A, I>,
  fast: (row: Readonly<Record<string, unknown>>) => A | undefined
) => {
  const slow = decodeAll(schema)
  const vouched = vouchedAll(fast)
  return (rows: ReadonlyArray<unknown>): Effect.Effect<ReadonlyArray<A>> => {
    const decoded = vouched(rows)
    return decoded === undefined ? slow(rows) : Effect.succeed(decoded)
  }
}

/** Every row as `fast` decodes it, or `undefined` when it does not vouch for one of them. */
export const vouchedAll = <A>(fast: (row: Readonly<Record<string, unknown>>) => A | undefined) =>
(rows: ReadonlyArray<unknown>): Array<A> | undefined => {
  const decoded: Array<A> = []
  for (const row of rows) {
    const value = typeof row === "object" && row !== null ? fast(row as Record<string, unknown>) : undefined
    if (value === undefined) return undefined
    decoded.push(value)
  }
  return decoded
}

const isPositiveSafeInt = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 1

const isValidDate = (value: unknown): value is Date => value instanceof Date && !Number.isNaN(value.getTime())

// The casts brand what the checks before them established: a positive safe integer.

/** A page of subscribers to send to (mysql2 and SQLite both answer numbers). */
export const decodeSubscriberRows = decodeAllFast(
  SubscriberRow,
  ({ alreadyRecorded, subscriptionId, userId }): Subscriber | undefined =>
    isPositiveSafeInt(subscriptionId) && isPositiveSafeInt(userId) && (alreadyRecorded === 0 || alreadyRecorded === 1)
      ? {
        subscriptionId: subscriptionId as SubscriptionId,
        userId: userId as UserId,
        alreadyRecorded: alreadyRecorded === 1
      }
      : undefined
)

/** Delivery rows (mysql2 answers `Date`s; SQLite's ISO text goes through the schema). */
const fastRecipientRow = ({ id, sentAt, userId }: Readonly<Record<string, unknown>>): RecipientRow | undefined =>
  isPositiveSafeInt(id) && isPositiveSafeInt(userId) && isValidDate(sentAt)
    ? { id: id as DeliveryId, userId: userId as UserId, sentAt }
    : undefined

export const decodeRecipientRows = decodeAllFast(RecipientRow, fastRecipientRow)

/** Recipient rows as mysql2 answers them, checked without the schema; `undefined` if one is not as expected. */
export const recipientRowsOf = vouchedAll(fastRecipientRow)
