import * as Schema from "effect/Schema"
import { ProductId, RestockRound, UserId } from "./Ids.js"

/** The states of `product_notification_history.status`. */
export const RoundStatus = Schema.Literal("IN_PROGRESS", "CANCELED_BY_SOLD_OUT", "CANCELED_BY_ERROR", "COMPLETED")
export type RoundStatus = typeof RoundStatus.Type

export const isTerminal = (status: RoundStatus): boolean => status !== "IN_PROGRESS"

/** One restock event of one product, as `GET /products/{id}/notifications/{round}` answers it. */
export class Round extends Schema.Class<Round>("Round")({
  productId: ProductId,
  restockRound: RestockRound,
  status: RoundStatus,
  /** The user of the last send of the longest contiguous successful prefix of the subscription order. */
  lastSentUserId: Schema.NullOr(UserId),
  /** Successful sends of this round, across every attempt. */
  sentCount: Schema.NonNegativeInt,
  startedAt: Schema.Date,
  updatedAt: Schema.Date,
  finishedAt: Schema.NullOr(Schema.Date),
  error: Schema.NullOr(Schema.String),
  /**
   * While the round waits for the send window to open (SPEC §3.12): the next
   * opening. `null` whenever it is not waiting.
   */
  waitingUntil: Schema.NullOr(Schema.Date).annotations({
    description: "while the round waits for the send window: its next opening (ISO 8601, UTC); null otherwise"
  })
}) {
  get isTerminal(): boolean {
    return isTerminal(this.status)
  }
}
