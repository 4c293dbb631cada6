/**
 * restock as real processes on MariaDB and Redis, sending through the
 * webhook notifier to a local test sender: from its sources (`node --import
 * tsx src/main.ts`, the default: what a test runs is what it reads), or
 * compiled (`dist/main.js`, what `npm start` and the image run: the benches
 * measure that one).
 *
 * - `layerBacking`: what instances share — a fresh, migrated MariaDB database
 *   (dropped afterwards) and a fresh Redis key prefix (its keys deleted
 *   afterwards) — and the test's own `SqlClient` on that database.
 * - `start`: one service process on 127.0.0.1 with a port of its own; it
 *   answers once `/health/ready` does, and is stopped (SIGTERM, then SIGKILL)
 *   when the scope closes. Its output is kept for failure messages.
 *
 * Every wait is bounded; a request that gets no answer in time fails the
 * test with the end of the service's output. A spawned process also stops
 * by itself if the test process dies without closing its scope.
 */
import { SqlClient } from "@effect/sql"
import { Context, Deferred, Duration, Effect, Layer, Option, Redacted, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { appendFileSync, mkdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { openStream, type StreamClient, type StreamOptions, TestServer } from "./Http.js"
import { layerMysql, TestDatabase } from "./Mysql.js"
import * as TestRedis from "./Redis.js"

export const adminToken = "admin-token-for-process-tests"
export const jwtSecret = "jwt-secret-for-process-tests-with-enough-entropy"

const repositoryRoot = fileURLToPath(new URL("../../", import.meta.url))

// ---------------------------------------------------------------------------
// What instances share

/** The database and Redis that the instances of one test share, as their URLs. */
export class Backing extends Context.Tag("test/Service/Backing")<Backing, {
  readonly databaseUrl: string
  readonly redisUrl: string
  readonly redisKeyPrefix: string
}>() {}

/** A fresh MariaDB database and Redis key prefix, shared by the instances of a test, and the test's `SqlClient` on it. */
export const layerBacking: Layer.Layer<Backing | SqlClient.SqlClient | TestDatabase> = Layer.scoped(
  Backing,
  Effect.gen(function*() {
    const { databaseUrl } = yield* TestDatabase
    const redisKeyPrefix = TestRedis.randomPrefix()
    yield* TestRedis.cleanUpOnClose(redisKeyPrefix)
    const redisUrl = Redacted.value(yield* TestRedis.url).href
    return { databaseUrl, redisUrl, redisKeyPrefix }
  })
).pipe(Layer.provideMerge(layerMysql))

/** `url` with its host and port replaced by a proxy's on 127.0.0.1. */
export const throughProxy = (url: string, port: number): string => {
  const proxied = new URL(url)
  proxied.hostname = "127.0.0.1"
  proxied.port = String(port)
  return proxied.href
}

// ---------------------------------------------------------------------------
// One process

export interface ServiceOptions {
  /** Names the process in failure messages. */
  readonly name: string
  readonly databaseUrl: string
  readonly redisUrl: string
  readonly redisKeyPrefix: string
  /** The third-party sender (`NOTIFIER=webhook`). */
  readonly webhookUrl: string
  readonly rateLimitPerSecond?: number | undefined
  /** `LEASE_SECONDS`: how long a crashed dispatcher's round stays claimed. */
  readonly leaseSeconds?: number | undefined
  /**
   * Run `dist/main.js`, built first if it is missing or older than the
   * sources (`scripts/start.mjs build`, once per test process), as `npm
   * start` runs it; otherwise `src/main.ts` through tsx.
   */
  readonly compiled?: boolean | undefined
  /** More arguments to node, e.g. `--cpu-prof` to see where a process spends its time. */
  readonly nodeArguments?: ReadonlyArray<string> | undefined
  /** More variables, applied last. */
  readonly env?: Readonly<Record<string, string>> | undefined
  /** How long start-up (migrations included) may take. Default 60 s: the machine may be busy. */
  readonly startupTimeout?: Duration.DurationInput | undefined
}

export interface Reply {
  readonly status: number
  readonly headers: Headers
  /** The body parsed as JSON, or `undefined` when it is empty. */
  readonly body: any
  readonly text: string
  /** Milliseconds from sending the request to reading the whole answer. */
  readonly elapsedMs: number
}

export interface RequestOptions {
  /** Default: the admin token. `null`: no `Authorization` header. */
  readonly token?: string | null | undefined
  readonly body?: unknown
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** How long the answer may take before the test fails. Default 10 s. */
  readonly timeout?: Duration.DurationInput | undefined
}

export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface ServiceProcess {
  readonly name: string
  readonly pid: number
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string
  readonly request: (method: string, path: string, options?: RequestOptions) => Effect.Effect<Reply>
  /** Opens an event stream on this instance (closed with the scope). */
  readonly stream: (path: string, options?: StreamOptions) => Effect.Effect<StreamClient, never, Scope.Scope>
  /** Sends `signal` and waits (bounded) until the process has exited. */
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<Exited>
  /** Completes when the process exits. */
  readonly exited: Effect.Effect<Exited>
  readonly isRunning: () => boolean
  /** What it printed so far (stdout and stderr interleaved), the end of it if long. */
  readonly output: () => string
  /** CPU time it has used so far, in ms (`undefined` where /proc is not there): to tell a slow process from a starved one. */
  readonly cpuMillis: () => number | undefined
}

/** Kept at most, per process: enough for the last few hundred log lines. */
const maxOutputChars = 200_000
/** The tail of the output that goes into a failure message. */
const tailChars = 6_000

/** Children still running, killed if this process exits without closing their scope. */
const running = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL")
})

/**
 * Preloaded into the service: ends it if its parent (the test runner) dies,
 * so that an aborted run never leaves a service process behind.
 */
const dieWithParent = "data:text/javascript," + encodeURIComponent(
  `const parent = process.ppid;
setInterval(() => { if (process.ppid !== parent) process.kill(process.pid, "SIGTERM") }, 500).unref();`
)

/** `dist/` made current once per test process, before the first compiled service starts (instances may start together). */
const buildOnce = Effect.runSync(Effect.cached(
  Effect.async<void, Error>((resume) => {
    const build = spawn(process.execPath, ["scripts/start.mjs", "build"], { cwd: repositoryRoot, stdio: ["ignore", "inherit", "inherit"] })
    build.on("error", (error) => resume(Effect.fail(error)))
    build.on("exit", (code) =>
      resume(code === 0 ? Effect.void : Effect.fail(new Error(`the build of dist/ failed (exit ${code})`))))
  })
))

const serviceEnv = (options: ServiceOptions): Record<string, string> => ({
  // A clean environment: nothing of the caller's (a REDIS_URL, a PORT) leaks in.
  PATH: process.env.PATH ?? "",
  HOME: process.env.HOME ?? "",
  HOST: "127.0.0.1",
  PORT: "0",
  DATABASE_URL: options.databaseUrl,
  REDIS_URL: options.redisUrl,
  REDIS_KEY_PREFIX: options.redisKeyPrefix,
  NOTIFIER: "webhook",
  NOTIFIER_WEBHOOK_URL: options.webhookUrl,
  RATE_LIMIT_PER_SECOND: String(options.rateLimitPerSecond ?? 500),
  LEASE_SECONDS: options.leaseSeconds === undefined ? "" : String(options.leaseSeconds),
  ADMIN_TOKEN: adminToken,
  JWT_SECRET: jwtSecret,
  LOG_FORMAT: "json",
  ...options.env
})

const listeningLine = /Listening on (http:\/\/127\.0\.0\.1:\d+)/

const safeJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** Starts one service process; stopped when the scope closes. Dies (fails the test) if it does not become ready in time. */
export const start = (options: ServiceOptions): Effect.Effect<ServiceProcess, never, Scope.Scope> =>
  Effect.gen(function*() {
    const startupTimeout = Duration.decode(options.startupTimeout ?? "60 seconds")
    let output = ""
    // RESTOCK_TEST_SERVICE_LOGS=<dir>: also keep each process' whole output there, for a closer look.
    const logDirectory = process.env.RESTOCK_TEST_SERVICE_LOGS?.trim()
    const logFile = logDirectory ? join(logDirectory, `${options.name.replace(/\W+/g, "-")}-${Date.now()}.log`) : undefined
    if (logDirectory) mkdirSync(logDirectory, { recursive: true })
    const append = (chunk: Buffer | string) => {
      if (logFile !== undefined) appendFileSync(logFile, chunk)
      output += chunk.toString()
      if (output.length > maxOutputChars) output = output.slice(output.length - maxOutputChars / 2)
    }
    const tail = () => output.slice(-tailChars)
    const listening = yield* Deferred.make<string>()
    const exited = yield* Deferred.make<Exited>()

    if (options.compiled === true) yield* Effect.orDie(buildOnce)
    const entry = options.compiled === true ? ["dist/main.js"] : ["--import", "tsx", "src/main.ts"]
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = spawn(process.execPath, [...(options.nodeArguments ?? []), "--import", dieWithParent, ...entry], {
          cwd: repositoryRoot,
          env: serviceEnv(options),
          stdio: ["ignore", "pipe", "pipe"]
        })
        running.add(child)
        let pending = ""
        child.stdout!.on("data", (chunk: Buffer) => {
          append(chunk)
          pending += chunk.toString()
          const lines = pending.split("\n")
          pending = lines.pop()!
          for (const line of lines) {
            const match = listeningLine.exec(line)
            if (match !== null) Deferred.unsafeDone(listening, Effect.succeed(match[1]!))
          }
        })
        child.stderr!.on("data", append)
        child.on("error", (error) => append(`\n[spawn error] ${error.message}\n`))
        child.on("exit", (code, signal) => {
          running.delete(child)
          Deferred.unsafeDone(exited, Effect.succeed({ code, signal }))
        })
        return child
      }),
      (child) => stop(child, Deferred.await(exited))
    )

    const fail = (why: string) => Effect.die(new Error(`${options.name} (pid ${child.pid}): ${why}\n--- its output ---\n${tail()}`))

    // Listening, or exited before it (a configuration or start-up failure), within the time allowed.
    const baseUrl = yield* Effect.raceFirst(
      Deferred.await(listening),
      Deferred.await(exited).pipe(
        Effect.flatMap(({ code, signal }) => fail(`exited during start-up (code ${code}, signal ${signal})`))
      )
    ).pipe(
      Effect.timeoutFail({ duration: startupTimeout, onTimeout: () => "timeout" as const }),
      Effect.catchAll(() => fail(`not listening within ${Duration.format(startupTimeout)}`))
    )

    const request = (method: string, path: string, requestOptions: RequestOptions = {}): Effect.Effect<Reply> =>
      Effect.gen(function*() {
        const timeout = Duration.decode(requestOptions.timeout ?? "10 seconds")
        const headers: Record<string, string> = {}
        const token = requestOptions.token === undefined ? adminToken : requestOptions.token
        if (token !== null) headers.authorization = `Bearer ${token}`
        if (requestOptions.body !== undefined) headers["content-type"] = "application/json"
        Object.assign(headers, requestOptions.headers)
        const answered = yield* Effect.tryPromise({
          try: async (signal): Promise<Reply> => {
          const startedAt = performance.now()
          const response = await fetch(baseUrl + path, {
            method,
            headers,
            signal: AbortSignal.any([signal, AbortSignal.timeout(Duration.toMillis(timeout))]),
            body: requestOptions.body === undefined
              ? undefined
              : typeof requestOptions.body === "string"
              ? requestOptions.body
              : JSON.stringify(requestOptions.body)
          })
          const text = await response.text()
          return {
            status: response.status,
            headers: response.headers,
            text,
            body: text === "" ? undefined : safeJson(text),
            elapsedMs: performance.now() - startedAt
          }
          },
          catch: (cause) => cause as { readonly name?: string; readonly message?: string } | undefined
        }).pipe(Effect.either)
        if (answered._tag === "Right") return answered.right
        const cause = answered.left
        const why = cause?.name === "TimeoutError"
          ? `no answer within ${Duration.format(timeout)}`
          : String(cause?.message ?? cause)
        return yield* fail(`${method} ${path}: ${why}`)
      })

    const port = Number(new URL(baseUrl).port)
    const service: ServiceProcess = {
      name: options.name,
      pid: child.pid!,
      baseUrl,
      request,
      stream: (path, streamOptions) =>
        openStream(path, streamOptions).pipe(Effect.provideService(TestServer, { baseUrl, port })),
      kill: (signal) =>
        Effect.sync(() => child.kill(signal)).pipe(
          Effect.zipRight(Deferred.await(exited)),
          Effect.timeoutFail({ duration: "15 seconds", onTimeout: () => "timeout" as const }),
          Effect.catchAll(() => fail(`still running 15 s after ${signal}`))
        ),
      exited: Deferred.await(exited),
      isRunning: () => child.exitCode === null && child.signalCode === null,
      output: () => output,
      cpuMillis: () => {
        try {
          // utime and stime, in clock ticks (100 per second on Linux), after the parenthesised command name.
          const fields = readFileSync(`/proc/${child.pid}/stat`, "utf8").replace(/^.*\) /s, "").split(" ")
          return (Number(fields[11]) + Number(fields[12])) * 10
        } catch {
          return undefined
        }
      }
    }

    // Ready: the database and Redis answer through it.
    const deadline = Date.now() + Duration.toMillis(startupTimeout)
    while (true) {
      const ready = yield* request("GET", "/health/ready", { token: null, timeout: "5 seconds" })
      if (ready.status === 200) break
      if (Date.now() > deadline) return yield* fail(`/health/ready still answers ${ready.status}: ${ready.text}`)
      yield* Effect.sleep("100 millis")
    }
    return service
  }).pipe(Effect.withSpan("test.service.start"))

/** SIGTERM, and SIGKILL if it has not exited within 10 s; waits (bounded) until it has. */
const stop = (child: ChildProcess, exited: Effect.Effect<Exited>): Effect.Effect<void> =>
  Effect.gen(function*() {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill("SIGTERM")
    const stopped = yield* exited.pipe(Effect.timeout("10 seconds"), Effect.option)
    if (Option.isSome(stopped)) return
    child.kill("SIGKILL")
    yield* exited.pipe(Effect.timeout("5 seconds"), Effect.ignore)
  })

// ---------------------------------------------------------------------------
// Data and rounds, as an operator and an order system would see them

/** Fails the test (with the instance's output) unless `reply` has `status`. */
export const expectStatus = (service: ServiceProcess, what: string, reply: Reply, status: number): Reply => {
  if (reply.status !== status) {
    throw new Error(`${what} on ${service.name}: expected ${status}, got ${reply.status} ${reply.text}\n` +
      `--- its output ---\n${service.output().slice(-tailChars)}`)
  }
  return reply
}

/**
 * A product with `stock` and users `1..subscribers` subscribed in that order.
 * The product goes through the API (so the stock reaches Redis); the
 * subscriptions go straight into the table, thousands at a time.
 */
export const seedProduct = (
  service: ServiceProcess,
  productId: number,
  options: { readonly stock: number; readonly subscribers: number; readonly firstUser?: number }
) =>
  Effect.gen(function*() {
    const created = yield* service.request("PUT", `/admin/products/${productId}`, {
      body: { name: `Product ${productId}`, stock: options.stock }
    })
    expectStatus(service, `creating product ${productId}`, created, 200)
    const sql = yield* SqlClient.SqlClient
    const first = options.firstUser ?? 1
    for (let from = 0; from < options.subscribers; from += 1000) {
      const rows: Array<string> = []
      for (let i = from; i < Math.min(options.subscribers, from + 1000); i++) {
        rows.push(`(${productId}, ${first + i}, TRUE, UTC_TIMESTAMP(3), UTC_TIMESTAMP(3))`)
      }
      yield* sql.unsafe(
        `INSERT INTO product_user_notification (product_id, user_id, is_active, created_at, updated_at) VALUES ${rows.join(", ")}`
      )
    }
  }).pipe(Effect.orDie)

/** The round resource, as the API answers it. */
export interface RoundJson {
  readonly productId: number
  readonly restockRound: number
  readonly status: "IN_PROGRESS" | "CANCELED_BY_SOLD_OUT" | "CANCELED_BY_ERROR" | "COMPLETED"
  readonly lastSentUserId: number | null
  readonly sentCount: number
  readonly error: string | null
  /** While the round waits for the send window: its next opening (ISO 8601). */
  readonly waitingUntil?: string | null
}

/** Triggers a round on `service`; fails the test unless it answers 202. */
export const trigger = (service: ServiceProcess, productId: number, body?: { readonly stock: number }) =>
  Effect.map(
    service.request("POST", `/products/${productId}/notifications/re-stock`, { body }),
    (reply) => expectStatus(service, `triggering product ${productId}`, reply, 202).body as RoundJson
  )

/** Waits until the round has left `IN_PROGRESS` (polling the API), and answers it. */
export const awaitTerminal = (
  service: ServiceProcess,
  productId: number,
  restockRound: number,
  within: Duration.DurationInput = "30 seconds"
) =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(within)
    while (true) {
      const reply = yield* service.request("GET", `/products/${productId}/notifications/${restockRound}`)
      const round = expectStatus(service, `reading round ${productId}/${restockRound}`, reply, 200).body as RoundJson
      if (round.status !== "IN_PROGRESS") return round
      if (Date.now() > deadline) {
        return yield* Effect.die(new Error(`round ${productId}/${restockRound} still IN_PROGRESS after ` +
          `${Duration.format(Duration.decode(within))}: ${JSON.stringify(round)}\n--- ${service.name} ---\n` +
          service.output().slice(-tailChars)))
      }
      yield* Effect.sleep("100 millis")
    }
  })

/** One `product_user_notification_history` row. */
export interface HistoryRow {
  readonly id: number
  readonly userId: number
}

/** The delivery records of a round, in id order. */
export const historyOf = (productId: number, restockRound: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ id: number | string; userId: number | string }>`
      SELECT id, user_id AS userId FROM product_user_notification_history
      WHERE product_id = ${productId} AND restock_round = ${restockRound} ORDER BY id`
    return rows.map((row): HistoryRow => ({ id: Number(row.id), userId: Number(row.userId) }))
  }).pipe(Effect.orDie)

/** Polls `probe` until `check` holds, on the real clock; dies saying what was expected. */
export const eventually = <A, R>(
  what: string,
  probe: Effect.Effect<A, never, R>,
  check: (value: A) => boolean,
  within: Duration.DurationInput = "10 seconds"
): Effect.Effect<A, never, R> =>
  Effect.gen(function*() {
    const deadline = Date.now() + Duration.toMillis(within)
    while (true) {
      const value = yield* probe
      if (check(value)) return value
      if (Date.now() > deadline) {
        return yield* Effect.die(new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`))
      }
      yield* Effect.sleep("50 millis")
    }
  })
