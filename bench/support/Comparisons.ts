/**
 * The rate limiters restock is compared against (ANCHORS.md), driven the way
 * their users drive them: N sends by 50 concurrent workers, each send an HTTP
 * POST to the same local sender restock's webhook notifier posts to, over a
 * keep-alive pool of the same size.
 */
import { Queue, Worker } from "bullmq"
import { Effect } from "effect"
import pThrottle from "p-throttle"
import { Agent, request } from "undici"

/** POSTs webhook-shaped bodies to the sender over one keep-alive pool. */
export const makeClient = (url: string) => {
  const agent = new Agent({ connections: 64 })
  const send = async (userId: number): Promise<void> => {
    const body = JSON.stringify({ userId, productId: 1, productName: "Bench product", restockRound: 1, sentAt: new Date() })
    const response = await request(url, {
      method: "POST",
      dispatcher: agent,
      headers: { "content-type": "application/json", "idempotency-key": `1:1:${userId}` },
      body
    })
    await response.body.dump()
    if (response.statusCode >= 300) throw new Error(`sender answered ${response.statusCode}`)
  }
  return { send, close: () => agent.destroy() }
}

/** `count` sends by `workers` concurrent loops, each send through `throttled`. */
const workerLoops = async (count: number, workers: number, throttled: (userId: number) => Promise<void>) => {
  let next = 1
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next <= count) await throttled(next++)
    })
  )
}

/** p-throttle 8.1 with `strict: true`: a sliding log where it sends. */
export const pThrottleStrict = (url: string, options: { readonly count: number; readonly workers: number; readonly limit: number }) =>
  Effect.acquireUseRelease(
    Effect.sync(() => makeClient(url)),
    (client) =>
      Effect.promise(() => {
        const throttle = pThrottle({ limit: options.limit, interval: 1000, strict: true })
        return workerLoops(options.count, options.workers, throttle(client.send))
      }),
    (client) => Effect.promise(() => client.close())
  )

/**
 * BullMQ 6.7: jobs queued first, then one worker with `concurrency` and its
 * Redis-held `limiter {max, duration}` works them off. Runs under its own key
 * prefix; the queue is obliterated afterwards.
 */
export const bullmqLimiter = (
  url: string,
  options: {
    readonly count: number
    readonly concurrency: number
    readonly limit: number
    readonly redisUrl: string
    readonly prefix: string
    /** Resolves once every send has arrived: when the worker is done. */
    readonly done: Effect.Effect<unknown>
  }
) =>
  Effect.gen(function*() {
    const redis = new URL(options.redisUrl)
    const connection = {
      host: redis.hostname,
      port: Number(redis.port || 6379),
      db: Number(redis.pathname.replace("/", "") || 0),
      maxRetriesPerRequest: null
    }
    const name = "bench-sends"
    const client = yield* Effect.acquireRelease(Effect.sync(() => makeClient(url)), (client) => Effect.promise(() => client.close()))
    const queue = yield* Effect.acquireRelease(
      Effect.sync(() => new Queue(name, { connection, prefix: options.prefix })),
      (queue) => Effect.promise(() => queue.obliterate({ force: true }).then(() => queue.close(), () => queue.close()))
    )
    yield* Effect.promise(() =>
      queue.addBulk(Array.from({ length: options.count }, (_, i) => ({
        name: "send",
        data: { userId: i + 1 },
        opts: { removeOnComplete: true, removeOnFail: true }
      })))
    )
    yield* Effect.acquireRelease(
      Effect.sync(() =>
        new Worker(name, (job) => client.send(job.data.userId as number), {
          connection,
          prefix: options.prefix,
          concurrency: options.concurrency,
          limiter: { max: options.limit, duration: 1000 }
        })
      ),
      (worker) => Effect.promise(() => worker.close())
    )
    yield* options.done
  }).pipe(Effect.scoped)
