/**
 * The `Notifier` contract on the webhook (a real socket to a test sender that
 * answers 503, 503 with `Retry-After` or 400 as told) and on the recording
 * notifier (its failure script).
 */
import { describe } from "@effect/vitest"
import { Context, Duration, Effect, Layer, Schema } from "effect"
import { Notification } from "../../src/Domain/Delivery.js"
import { Notifier, SendFailed } from "../../src/Notifier/Notifier.js"
import * as Recording from "../../src/Notifier/Recording.js"
import * as Webhook from "../../src/Notifier/Webhook.js"
import { notifierContract, type Received } from "../contracts/Notifier.contract.js"
import * as TestSender from "../support/Sender.js"

const encodeNotification = Schema.encodeSync(Notification)

describe("Notifier contract", () => {
  notifierContract("webhook", {
    make: (refuse) =>
      Effect.gen(function*() {
        const sender = yield* TestSender.start({
          script: (arrival): TestSender.Reply | undefined => {
            const refusal = arrival.userId === undefined ? undefined : refuse(arrival.userId)
            if (refusal === undefined) return undefined
            if (refusal.reason === "Permanent") return { status: 400, body: "unknown recipient" }
            return {
              status: 503,
              headers: refusal.retryAfterSeconds === undefined ? {} : { "retry-after": `${refusal.retryAfterSeconds}` }
            }
          }
        })
        const notifier = yield* Effect.map(Layer.build(Webhook.layer({ url: sender.url })), Context.get(Notifier))
        const received = Effect.sync(() =>
          sender.arrivals().map((arrival): Received => ({ idempotencyKey: arrival.idempotencyKey!, ...(arrival.body as Omit<Received, "idempotencyKey">) }))
        )
        return { notifier, received }
      })
  })

  notifierContract("recording", {
    make: (refuse) =>
      Effect.gen(function*() {
        const context = yield* Layer.build(Recording.layer({
          failure: (call) => {
            const refusal = refuse(call.notification.userId)
            return refusal === undefined ? undefined : new SendFailed({
              reason: refusal.reason,
              message: `refused user ${call.notification.userId}`,
              retryAfter: refusal.retryAfterSeconds === undefined ? undefined : Duration.seconds(refusal.retryAfterSeconds)
            })
          }
        }))
        const recording = Context.get(context, Recording.Recording)
        const received = Effect.map(recording.calls, (calls) =>
          // A notification's JSON form is its schema's encoding: what the recording notifier got, as a receiver would read it.
          calls.map(({ notification }): Received => ({
            idempotencyKey: notification.idempotencyKey,
            ...encodeNotification(notification)
          })))
        return { notifier: Context.get(context, Notifier), received }
      })
  })
})
