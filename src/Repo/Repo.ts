/**
 * The `Repo` port: everything restock keeps in its database. One adapter
 * (`Sql.ts`) serves MySQL/MariaDB and the embedded SQLite file.
 *
 * Every method fails with `StorageUnavailable` when the database cannot be
 * reached; the round-writing methods are fenced by the dispatcher's lease and
 * fail with `LeaseLost` when another dispatcher took the round over.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import type * as Stream from "effect/Stream"
import type { Delivery, DeliveryRecord, Recipient } from "../Domain/Delivery.js"
import type {
  HistoryPruned,
  LeaseLost,
  NothingToResume,
  ProductNotFound,
  RoundInProgress,
  StorageUnavailable
} from "../Domain/Errors.js"
import type { DeliveryId, ProductId, RestockRound, SubscriptionId, UserId } from "../Domain/Ids.js"
import type { Product, ProductFields } from "../Domain/Product.js"
import type { Round, RoundStatus } from "../Domain/Round.js"
import type { Subscriber, Subscription } from "../Domain/Subscription.js"

/** A product with what the operator console lists beside it. */
export interface ProductSummary {
  readonly product: Product
  readonly activeSubscribers: number
  readonly latestRound: Round | null
}

/** Who is sending a round, and until when that claim holds without a heartbeat. */
export interface Lease {
  /** A dispatcher's id: unique per process and round attempt. */
  readonly owner: string
  readonly expiresAt: Date
}

export interface Page<A> {
  readonly items: ReadonlyArray<A>
  /** The id to pass as `afterId` for the next page; `null` at the end. */
  readonly nextAfterId: number | null
}

export interface RecordedBatch {
  /** The `product_user_notification_history` rows of the batch, with their ids. */
  readonly deliveries: ReadonlyArray<Delivery>
  /** The round after the batch: `sentCount`, `lastSentUserId`, `updatedAt`. */
  readonly round: Round
}

/** Where a pruning pass has got to: the last record it looked at, in `(sent_at, id)` order. */
export interface PruneCursor {
  readonly sentAt: Date
  readonly id: number
}

export interface PrunedBatch {
  /** Expired records read (at most the limit); fewer than the limit: the pass reached the cutoff. */
  readonly examined: number
  /** Of those, the ones deleted (the others belong to rounds that can still be resumed). */
  readonly deleted: number
  /** Where the next batch of the pass starts; `null` when nothing was read. */
  readonly last: PruneCursor | null
  /** The highest delivery id pruned so far, this batch included. */
  readonly prunedThrough: number
  /**
   * Whether a round was sending when the batch ran, on any instance: `IN_PROGRESS` and not
   * waiting for its send window (read with the rounds whose records are kept, no extra query).
   */
  readonly roundSending: boolean
}

/** Another instance holds the pruning lease (or it lapsed and was taken): this pruner must stop. */
export class PruningLeaseLost extends Data.TaggedError("PruningLeaseLost")<{ readonly owner: string }> {}

export interface RepoShape {
  // ---- products
  /**
   * Creates the product (name defaults to `Product <id>`, stock and minimum
   * stock to 0, no per-unit cap) or updates the given fields (`notifyPerUnit:
   * null` clears the cap), with `stock_status` following stock and minimum.
   */
  readonly upsertProduct: (id: ProductId, fields: ProductFields) => Effect.Effect<Product, StorageUnavailable>
  readonly getProduct: (id: ProductId) => Effect.Effect<Option.Option<Product>, StorageUnavailable>
  /** Writes `stock` and the `stock_status` it makes against the row's `minimum_stock`. */
  readonly setStock: (id: ProductId, stock: number) => Effect.Effect<Product, ProductNotFound | StorageUnavailable>
  /** Products by id after `afterId`, with their active subscriber count and latest round. */
  readonly listProducts: (
    options: { readonly afterId: ProductId | null; readonly limit: number }
  ) => Effect.Effect<Page<ProductSummary>, StorageUnavailable>

  // ---- subscriptions
  /** Subscribes, or reactivates the existing row so the user keeps their place. Idempotent. */
  readonly subscribe: (
    productId: ProductId,
    userId: UserId
  ) => Effect.Effect<Subscription, ProductNotFound | StorageUnavailable>
  /** Sets `is_active = false`. Idempotent; a user who never subscribed is not an error. */
  readonly unsubscribe: (productId: ProductId, userId: UserId) => Effect.Effect<void, ProductNotFound | StorageUnavailable>
  /** The subscription position of a user (active or not), used to resume after `lastSentUserId`. */
  readonly subscriptionIdOf: (
    productId: ProductId,
    userId: UserId
  ) => Effect.Effect<Option.Option<SubscriptionId>, StorageUnavailable>
  /**
   * Active subscribers in subscription order after `after`, each flagged
   * `alreadyRecorded` if it has a delivery record of `restockRound` (a resume
   * sends those no second time but counts them in the contiguous prefix), read
   * lazily in pages of `pageSize` by an index range scan (never the whole
   * list in memory).
   */
  readonly pendingSubscribers: (
    productId: ProductId,
    options: {
      readonly restockRound: RestockRound
      readonly after: SubscriptionId | null
      readonly pageSize: number
    }
  ) => Stream.Stream<Subscriber, StorageUnavailable>

  // ---- rounds
  /**
   * Increments `product.restock_round` and inserts the round `IN_PROGRESS`,
   * leased to `lease.owner`, in one transaction. A unique index makes a second
   * `IN_PROGRESS` round of one product impossible: concurrent calls yield one
   * round and `RoundInProgress` for the rest. `waitingUntil`: the round
   * opens waiting for the send window (its answer, the trigger's 202, says so).
   */
  readonly openRound: (
    productId: ProductId,
    lease: Lease,
    now: Date,
    options?: { readonly waitingUntil?: Date | null | undefined }
  ) => Effect.Effect<Round, ProductNotFound | RoundInProgress | StorageUnavailable>
  /**
   * Sets the latest round back to `IN_PROGRESS` under a new lease, if it is
   * `CANCELED_BY_ERROR`, or `IN_PROGRESS` with a lease that expired before `now`.
   * A conditional update: of concurrent calls, one wins. `waiting_until`
   * becomes `waitingUntil` (none: `NULL`): a wait the previous dispatcher
   * left is not this one's.
   */
  readonly reopenRound: (
    productId: ProductId,
    lease: Lease,
    now: Date,
    options?: { readonly waitingUntil?: Date | null | undefined }
  ) => Effect.Effect<Round, ProductNotFound | NothingToResume | StorageUnavailable>
  /** Extends the lease; `LeaseLost` if another owner holds the round or it is no longer `IN_PROGRESS`. */
  readonly renewLease: (
    productId: ProductId,
    restockRound: RestockRound,
    lease: Lease
  ) => Effect.Effect<void, LeaseLost | StorageUnavailable>
  /**
   * In one transaction: inserts the delivery records (ignoring any that
   * already exist for the user in this round), adds the number inserted to
   * `sent_count`, sets `last_sent_user_id` when given, and returns the rows.
   * Fenced: only the lease owner of an `IN_PROGRESS` round may write.
   *
   * `round` is the round as its owner last wrote it (from `openRound`,
   * `reopenRound` or the previous batch): while the fence holds nobody else
   * changes it, so the round returned is that one with this batch's changes,
   * not read back.
   */
  readonly recordDeliveries: (
    round: Round,
    owner: string,
    batch: {
      readonly deliveries: ReadonlyArray<DeliveryRecord>
      /** The new end of the contiguous prefix, or `undefined` to leave it. */
      readonly lastSentUserId: UserId | undefined
      readonly now: Date
      /** The product's name as the notifications carried it: the recorded deliveries say the same. */
      readonly productName: string
    }
  ) => Effect.Effect<RecordedBatch, LeaseLost | StorageUnavailable>
  /** Moves an `IN_PROGRESS` round held by `owner` to a terminal status and clears the lease and `waiting_until`. */
  readonly finishRound: (
    productId: ProductId,
    restockRound: RestockRound,
    owner: string,
    outcome: {
      readonly status: Exclude<RoundStatus, "IN_PROGRESS">
      readonly error: string | null
      readonly now: Date
    }
  ) => Effect.Effect<Round, LeaseLost | StorageUnavailable>
  /**
   * Sets (a date: the next opening of the send window) or clears (`null`)
   * the round's `waitingUntil`, and `updatedAt` to `now`; answers the round as
   * stored. Fenced like `recordDeliveries`: only the lease owner of an
   * `IN_PROGRESS` round may write. The round it answers is the one to record
   * the next batch from.
   */
  readonly setWaitingUntil: (
    productId: ProductId,
    restockRound: RestockRound,
    owner: string,
    waitingUntil: Date | null,
    now: Date
  ) => Effect.Effect<Round, LeaseLost | StorageUnavailable>
  readonly getRound: (
    productId: ProductId,
    restockRound: RestockRound
  ) => Effect.Effect<Option.Option<Round>, StorageUnavailable>
  readonly latestRound: (productId: ProductId) => Effect.Effect<Option.Option<Round>, StorageUnavailable>
  /** Rounds of a product, newest first. */
  readonly listRounds: (productId: ProductId) => Effect.Effect<ReadonlyArray<Round>, StorageUnavailable>

  // ---- deliveries
  /**
   * Who received a round, in send (history id) order, paged by history id;
   * `HistoryPruned` if the retention deleted any of the round's records.
   */
  readonly recipients: (
    productId: ProductId,
    restockRound: RestockRound,
    options: { readonly afterId: DeliveryId | null; readonly limit: number }
  ) => Effect.Effect<Page<Recipient>, HistoryPruned | StorageUnavailable>
  /** A user's deliveries with an id greater than `afterId`, in id order (SSE replay). */
  readonly deliveriesOfUser: (
    userId: UserId,
    options: { readonly afterId: DeliveryId | null; readonly limit: number }
  ) => Effect.Effect<ReadonlyArray<Delivery>, StorageUnavailable>

  // ---- retention (SPEC §3.15–§3.16)
  /**
   * Takes or renews the pruning lease (one row shared by every instance) if
   * it is free, lapsed before `now`, or already `lease.owner`'s; answers
   * whether `lease.owner` holds it now.
   */
  readonly claimPruning: (lease: Lease, now: Date) => Effect.Effect<boolean, StorageUnavailable>
  /** Gives the lease up (shutdown), so that another instance prunes at once. */
  readonly releasePruning: (owner: string) => Effect.Effect<void, StorageUnavailable>
  /**
   * One batch, in one transaction fenced by the lease (which it extends to
   * `leaseExpiresAt`): reads up to `limit` records with `sent_at < cutoff`
   * after `after`, oldest first, through `ix_history_sent_at`; deletes those
   * not of a round that can still be resumed (its product's latest,
   * `IN_PROGRESS` or `CANCELED_BY_ERROR`); flags their rounds
   * `records_pruned`; moves `pruned_through` up to the highest id deleted.
   * All of it commits or none: a pruner killed mid-batch leaves no record
   * deleted without the watermark and flag that say so.
   */
  readonly pruneHistory: (
    owner: string,
    options: {
      readonly cutoff: Date
      readonly after: PruneCursor | null
      readonly limit: number
      readonly leaseExpiresAt: Date
    }
  ) => Effect.Effect<PrunedBatch, PruningLeaseLost | StorageUnavailable>
  /** The highest delivery id pruned so far (0: none), as every instance sees it. */
  readonly prunedThrough: Effect.Effect<number, StorageUnavailable>
  /** When the oldest delivery record kept was sent (`None`: no records). */
  readonly oldestRecordSentAt: Effect.Effect<Option.Option<Date>, StorageUnavailable>

  /** Answers when the database does (readiness). */
  readonly ping: Effect.Effect<void, StorageUnavailable>
}

export class Repo extends Context.Tag("restock/Repo")<Repo, RepoShape>() {}
