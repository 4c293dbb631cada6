/**
 * The real service and a real browser, for the console's tests and the
 * screenshot script (so it imports no test framework).
 *
 * The service is `src/main.ts` itself, spawned the way `npm start` runs it,
 * on a fresh SQLite file and a random port: what a newcomer runs is what is
 * tested. The browser is Debian's Chromium driven by `playwright-core`;
 * nothing is ever downloaded.
 */
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type BrowserContext, chromium } from "playwright-core"

export const repositoryRoot = fileURLToPath(new URL("../..", import.meta.url))
export const adminToken = "console-test-admin-token"
export const jwtSecret = "console-test-jwt-secret-with-enough-entropy"

export interface RunningService {
  readonly baseUrl: string
  readonly port: number
  /** The service's SQLite file (tests that age records reach it directly). */
  readonly databaseFile: string
  /** Every line the service wrote to stdout so far (JSON objects: `LOG_FORMAT=json`). */
  readonly lines: () => ReadonlyArray<string>
  /** SIGTERM, then waits for the exit; answers the exit code. */
  readonly stop: () => Promise<number | null>
  /** Stops the service and starts it again on the same port and database (clients reconnect). */
  readonly restart: () => Promise<RunningService>
}

export interface ServiceOptions {
  /** Extra environment: `NOTIFIER`, `RATE_LIMIT_PER_SECOND`, … */
  readonly env?: Record<string, string> | undefined
}

interface Instance {
  readonly port: number
  readonly dataDir: string
}

/** Ends the service if the process that started it dies without stopping it (a killed test run). */
const orphanGuard = "data:text/javascript," + encodeURIComponent(
  "const parent = process.ppid; setInterval(() => { if (process.ppid !== parent) process.kill(process.pid, 'SIGTERM') }, 500).unref();"
)

/** Starts `src/main.ts` on a fresh database and resolves once it listens; `stop` removes the database. */
export const startService = (options: ServiceOptions = {}): Promise<RunningService> =>
  launch(options, { port: 0, dataDir: mkdtempSync(join(tmpdir(), "restock-console-")) })

const launch = (options: ServiceOptions, instance: Instance): Promise<RunningService> => {
  const { dataDir } = instance
  const child = spawn(process.execPath, ["--import", orphanGuard, "--import", "tsx", "src/main.ts"], {
    cwd: repositoryRoot,
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(instance.port),
      DATABASE_URL: `sqlite:${join(dataDir, "restock.sqlite")}`,
      REDIS_URL: "",
      ADMIN_TOKEN: adminToken,
      JWT_SECRET: jwtSecret,
      LOG_FORMAT: "json",
      OTEL_EXPORTER_OTLP_ENDPOINT: "",
      ...options.env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const lines: Array<string> = []
  let stderr = ""
  let pending = ""
  child.stdout!.setEncoding("utf8")
  child.stderr!.setEncoding("utf8")
  child.stderr!.on("data", (chunk: string) => {
    stderr += chunk
  })

  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const exit = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000)
    const code = await exited
    clearTimeout(timer)
    return code
  }
  const stop = async () => {
    const code = await exit()
    rmSync(dataDir, { recursive: true, force: true })
    return code
  }

  return new Promise((resolve, reject) => {
    const timeout = setTimeout(() => {
      void stop()
      reject(new Error(`the service did not start within 60 s; stderr:\n${stderr}\nstdout:\n${lines.join("\n")}`))
    }, 60_000)
    child.stdout!.on("data", (chunk: string) => {
      pending += chunk
      const complete = pending.split("\n")
      pending = complete.pop()!
      for (const line of complete) {
        lines.push(line)
        const listening = /Listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line)
        if (listening) {
          clearTimeout(timeout)
          const port = Number(listening[1])
          const restart = async () => {
            await exit()
            return launch(options, { port, dataDir })
          }
          resolve({
            baseUrl: `http://127.0.0.1:${port}`,
            port,
            databaseFile: join(dataDir, "restock.sqlite"),
            lines: () => lines,
            stop,
            restart
          })
        }
      }
    })
    void exited.then((code) => {
      clearTimeout(timeout)
      reject(new Error(`the service exited with ${code} before listening; stderr:\n${stderr}`))
    })
  })
}

export const chromiumPath = "/usr/bin/chromium"

export interface Browser {
  readonly context: BrowserContext
  readonly close: () => Promise<void>
}

/** Debian's Chromium, headless, on a fresh profile. Fails saying how to install it when it is missing. */
export const launchBrowser = async (): Promise<Browser> => {
  if (!existsSync(chromiumPath)) {
    throw new Error(
      `Chromium is not installed at ${chromiumPath}: the console's browser tests need it. ` +
        "Install it with `apt-get update && apt-get install -y chromium` (.ci/browser does this)."
    )
  }
  const profile = mkdtempSync(join(tmpdir(), "restock-chromium-"))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync"
    ],
    viewport: { width: 1440, height: 900 }
  })
  return {
    context,
    close: async () => {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    }
  }
}

/** Calls the service's API as the admin (for setting the scene, never for checking the page). */
export const adminRequest = async (
  service: Pick<RunningService, "baseUrl">,
  method: string,
  path: string,
  body?: unknown,
  token: string = adminToken
): Promise<any> => {
  const response = await fetch(service.baseUrl + path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" })
    },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`)
  return text === "" ? undefined : JSON.parse(text)
}

/** Subscribes users `from`..`to` to a product through the API, with the admin token. */
export const subscribeMany = async (
  service: Pick<RunningService, "baseUrl">,
  productId: number,
  from: number,
  to: number
): Promise<void> => {
  const users = Array.from({ length: to - from + 1 }, (_, index) => from + index)
  // A few at a time: enough to be quick, few enough for a small machine.
  for (let start = 0; start < users.length; start += 20) {
    await Promise.all(
      users.slice(start, start + 20).map((user) =>
        adminRequest(service, "PUT", `/products/${productId}/subscriptions/${user}`)
      )
    )
  }
}
