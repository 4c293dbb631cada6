import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Schema } from "effect"
import { decodeRecipientRows, decodeSubscriberRows, RecipientRow, SubscriberRow } from "../../src/Repo/Rows.js"

const bySchema = <A, I>(schema: Schema.Schema<A, I>, rows: ReadonlyArray<unknown>) =>
  Schema.decodeUnknownSync(Schema.Array(schema))(rows)

const failureOf = <A>(effect: Effect.Effect<A>) =>
  Effect.map(Effect.exit(effect), (exit) => (Exit.isFailure(exit) ? String(exit.cause) : "succeeded"))

describe("hot rows, decoded by hand when the driver's shape is the usual one", () => {
  it.effect("a page of subscribers decodes as its schema decodes it", () =>
    Effect.gen(function*() {
      const rows = [
        { subscriptionId: 1, userId: 10, alreadyRecorded: 0 },
        { subscriptionId: Number.MAX_SAFE_INTEGER, userId: 11, alreadyRecorded: 1 }
      ]
      expect(yield* decodeSubscriberRows(rows)).toEqual(bySchema(SubscriberRow, rows))
      expect((yield* decodeSubscriberRows(rows)).map((row) => row.alreadyRecorded)).toEqual([false, true])
    }))

  it.effect("a subscriber row out of shape is the schema's to refuse, naming the field", () =>
    Effect.gen(function*() {
      for (const bad of [{ alreadyRecorded: 2 }, { userId: 0 }, { subscriptionId: 1.5 }, { userId: "10" }]) {
        const failure = yield* failureOf(decodeSubscriberRows([{ subscriptionId: 1, userId: 10, alreadyRecorded: 0, ...bad }]))
        expect(failure).toContain(Object.keys(bad)[0])
      }
      expect(yield* failureOf(decodeSubscriberRows([null]))).not.toBe("succeeded")
    }))

  it.effect("delivery rows: mysql2's Dates as they are, SQLite's ISO text through the schema", () =>
    Effect.gen(function*() {
      const sentAt = new Date("2031-05-06T07:08:09.123Z")
      const mysqlRows = [{ id: 5, userId: 7, sentAt }]
      expect(yield* decodeRecipientRows(mysqlRows)).toEqual(bySchema(RecipientRow, mysqlRows))
      const sqliteRows = [{ id: 5, userId: 7, sentAt: sentAt.toISOString() }]
      expect(yield* decodeRecipientRows(sqliteRows)).toEqual([{ id: 5, userId: 7, sentAt }])
      expect(yield* failureOf(decodeRecipientRows([{ id: -5, userId: 7, sentAt }]))).toContain("id")
    }))
})
