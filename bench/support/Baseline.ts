/**
 * The per-row shape restock's batching is measured against (ANCHORS.md):
 * 50 concurrent workers, each taking the next message, sending it (to an
 * instant sender) and then inserting its one history row, autocommitted,
 * on a pool of one connection per worker.
 */
import { Effect } from "effect"
import { createPool } from "mysql2/promise"
import { now } from "./Measure.js"

export interface BaselineFigures {
  readonly messages: number
  readonly seconds: number
  readonly perSecond: number
  readonly cpuMs: number
}

export const sendThenInsert = (options: {
  readonly databaseUrl: string
  readonly messages: number
  readonly workers: number
  readonly productId: number
}) =>
  Effect.acquireUseRelease(
    Effect.sync(() => createPool({ uri: options.databaseUrl, connectionLimit: options.workers })),
    (pool) =>
      Effect.promise(async (): Promise<BaselineFigures> => {
        // Connections opened before the clock starts, as a long-running worker pool would have them.
        const warm = await Promise.all(Array.from({ length: options.workers }, () => pool.getConnection()))
        for (const connection of warm) connection.release()
        const send = async (_userId: number): Promise<void> => {}
        const cpu = process.cpuUsage()
        const started = now()
        let next = 1
        await Promise.all(
          Array.from({ length: options.workers }, async () => {
            while (next <= options.messages) {
              const userId = next++
              const sentAt = new Date()
              await send(userId)
              await pool.execute(
                "INSERT INTO product_user_notification_history (product_id, user_id, restock_round, sent_at) VALUES (?, ?, ?, ?)",
                [options.productId, userId, 1, sentAt]
              )
            }
          })
        )
        const seconds = (now() - started) / 1000
        const used = process.cpuUsage(cpu)
        return {
          messages: options.messages,
          seconds,
          perSecond: options.messages / seconds,
          cpuMs: (used.user + used.system) / 1000
        }
      }),
    (pool) => Effect.promise(() => pool.end())
  )
