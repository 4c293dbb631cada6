/**
 * A short transaction on one pooled mysql2 connection, run as one chain of
 * the driver's callbacks: `START TRANSACTION`, the statements a script asks
 * for one after another (each chosen from the previous answer), then
 * `COMMIT` or `ROLLBACK`. It is the record batch's path (`SqlDeliveries.ts`),
 * which comes every few sends at the limit: as one effect per statement,
 * within `withTransaction` or a reserved connection's scope, the fiber
 * machinery around four round trips cost more than the round trips.
 *
 * It is never interrupted part way: the chain runs to its end and the
 * connection is given back once, after its last answer, so no statement can
 * meet a connection that went back to the pool. So that a server that stops
 * answering cannot hold it (and a shutdown waiting on it) for ever, every
 * statement has `statementTimeoutMillis`. A connection that timed out, broke
 * or failed to roll back is destroyed, not given back: it may still be inside
 * the transaction, which the next user of the pool would then continue; the
 * server rolls back a transaction whose connection closed.
 */
import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"

/**
 * A statement of the script, sent unprepared (`query`): preparing one first
 * is a round trip of its own, which mysql2 runs with no timeout.
 */
export interface CallbackStatement {
  readonly sql: string
  readonly values: ReadonlyArray<unknown>
}

/** What the script does next: run a statement and look at its answer, or end the transaction with a value. */
export type Step<A> =
  | { readonly _tag: "Run"; readonly statement: CallbackStatement; readonly onAnswer: (result: unknown) => Step<A> }
  | { readonly _tag: "Commit"; readonly value: A }
  | { readonly _tag: "Rollback"; readonly value: A }

interface QueryOptions {
  readonly sql: string
  readonly values?: ReadonlyArray<unknown>
  readonly timeout: number
}

/** The part of mysql2's `PoolConnection` the chain uses. */
export interface PooledConnection {
  query(options: QueryOptions, callback: (error: Error | null, result: unknown) => void): unknown
  release(): void
  destroy(): void
}

/** The part of mysql2's `Pool` the chain uses. */
export interface ConnectionPool {
  getConnection(callback: (error: Error | null, connection: PooledConnection) => void): void
}

/**
 * The longest a statement of the chain may go unanswered. A batch's
 * statements take milliseconds; this only bounds a server that went silent
 * (the general path, which runs next, has its own retries).
 */
export const statementTimeoutMillis = 10_000

const failed = (cause: unknown, message: string) => new SqlError({ cause, message })

/** mysql2 marks an error that broke the connection `fatal`; a timed-out statement leaves it out of step. */
const brokeTheConnection = (error: unknown): boolean => {
  const { code, fatal } = error as { readonly code?: unknown; readonly fatal?: unknown }
  return fatal === true || code === "PROTOCOL_SEQUENCE_TIMEOUT"
}

/**
 * Runs `first` and what follows it in one transaction on a connection of
 * `pool`. A statement that fails rolls the transaction back and fails the
 * effect; the script's `Rollback` rolls back and answers its value.
 */
export const inCallbackTransaction = <A>(pool: ConnectionPool, first: Step<A>): Effect.Effect<A, SqlError> =>
  Effect.uninterruptible(Effect.async<A, SqlError>((resume) => {
    pool.getConnection((acquireError, connection) => {
      if (acquireError) return resume(Effect.fail(failed(acquireError, "Failed to acquire connection")))

      const run = (sql: string, callback: (error: Error | null, result: unknown) => void) =>
        connection.query({ sql, timeout: statementTimeoutMillis }, callback)
      const rollback = (then: () => void) =>
        run("ROLLBACK", (error) => {
          if (error) connection.destroy()
          else connection.release()
          then()
        })
      const fail = (cause: Error) => {
        const failure = Effect.fail(failed(cause, "Failed to execute statement"))
        if (!brokeTheConnection(cause)) return rollback(() => resume(failure))
        connection.destroy()
        resume(failure)
      }

      const step = (next: Step<A>): void => {
        if (next._tag === "Commit") {
          run("COMMIT", (error) => {
            if (error) return fail(error)
            connection.release()
            resume(Effect.succeed(next.value))
          })
        } else if (next._tag === "Rollback") {
          rollback(() => resume(Effect.succeed(next.value)))
        } else {
          const { sql, values } = next.statement
          connection.query({ sql, values, timeout: statementTimeoutMillis }, (error, result) => {
            if (error) return fail(error)
            let following: Step<A>
            try {
              following = next.onAnswer(result)
            } catch (defect) {
              return rollback(() => resume(Effect.die(defect)))
            }
            stepSafely(following)
          })
        }
      }
      // Run from the driver's callbacks, where a throw (the driver refusing a value, say) would
      // escape every handler: it ends the transaction as a defect instead.
      const stepSafely = (next: Step<A>): void => {
        try {
          step(next)
        } catch (defect) {
          rollback(() => resume(Effect.die(defect)))
        }
      }

      run("START TRANSACTION", (error) => {
        if (error) return fail(error)
        stepSafely(first)
      })
    })
  }))

/**
 * The mysql2 pool under `sql`, found once, or `undefined` when there is none
 * to be found. `@effect/sql-mysql2` (0.53) does not expose its pool: a
 * connection it reserves holds mysql2's `PoolConnection` as `conn`, which
 * holds its pool as `_pool`. Where either is missing (another client, a
 * version that moved them) the answer is `undefined` and record batches take
 * the general path, slower but the same; a test on MariaDB asserts that the
 * pool is found and that batches commit through it, so such an upgrade is
 * noticed.
 */
export const driverPoolOf = (sql: SqlClient.SqlClient): Effect.Effect<ConnectionPool | undefined, SqlError> => {
  // Only a pool found is kept: a connection the server has just closed has no pool any more,
  // and the next batch looks again.
  let found: ConnectionPool | undefined
  return Effect.suspend(() =>
    found !== undefined
      ? Effect.succeed(found)
      : Effect.scoped(Effect.map(sql.reserve, (connection) => {
        const candidate = (connection as unknown as { readonly conn?: { readonly _pool?: unknown } }).conn?._pool
        if (isConnectionPool(candidate)) found = candidate
        return found
      }))
  )
}

const isConnectionPool = (value: unknown): value is ConnectionPool =>
  typeof value === "object" && value !== null && typeof (value as { getConnection?: unknown }).getConnection === "function"
