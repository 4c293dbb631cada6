/**
 * What ships, run for real: `npm run build` compiles the service to `dist/`,
 * `node dist/main.js` serves it (what the image's CMD runs) and answers the
 * image's own health check, and `npm pack` yields a package that a scratch
 * project installs offline, type-checks against and runs.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { builtinModules } from "node:module"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import ts from "typescript"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { healthcheckCommand } from "../support/Dockerfile.js"
import { repositoryRoot, runCommand } from "../support/Process.js"

const dist = join(repositoryRoot, "dist")
const manifest = JSON.parse(readFileSync(join(repositoryRoot, "package.json"), "utf8"))
const adminToken = "build-test-admin-token"

const filesUnder = (directory: string): Array<string> =>
  readdirSync(directory, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))

const scratchDirectories: Array<string> = []
const scratch = (prefix: string) => {
  const directory = mkdtempSync(join(tmpdir(), prefix))
  scratchDirectories.push(directory)
  return directory
}

beforeAll(async () => {
  const built = await runCommand("npm", ["run", "build"], { cwd: repositoryRoot, env: {}, timeoutMs: 120_000 })
  if (built.code !== 0) throw new Error(`npm run build failed:\n${built.stdout}\n${built.stderr}`)
}, 150_000)

afterAll(() => {
  for (const directory of scratchDirectories) rmSync(directory, { recursive: true, force: true })
})

/** `node dist/main.js` on a fresh SQLite file and a random port; resolves with its port once it listens. */
const startCompiled = (dataDir: string) =>
  new Promise<{ readonly child: ChildProcess; readonly port: number; readonly exited: Promise<number | null> }>(
    (resolve, reject) => {
      const child = spawn(process.execPath, [join(dist, "main.js")], {
        cwd: dataDir,
        env: {
          PATH: process.env.PATH ?? "",
          HOST: "127.0.0.1",
          PORT: "0",
          NODE_ENV: "production",
          DATABASE_URL: `sqlite:${join(dataDir, "restock.sqlite")}`,
          ADMIN_TOKEN: adminToken,
          LOG_FORMAT: "json"
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)))
      const timer = setTimeout(() => {
        child.kill("SIGKILL")
        reject(new Error(`dist/main.js did not listen within 30 s:\n${output}`))
      }, 30_000)
      const watch = (chunk: Buffer) => {
        output += chunk.toString()
        const listening = /Listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
        if (listening) {
          clearTimeout(timer)
          resolve({ child, port: Number(listening[1]), exited })
        }
      }
      child.stdout!.on("data", watch)
      child.stderr!.on("data", watch)
      void exited.then((code) => {
        clearTimeout(timer)
        reject(new Error(`dist/main.js exited with ${code} before listening:\n${output}`))
      })
    }
  )

/** The image's HEALTHCHECK command, run as Docker would run it in the container (its PORT set). */
const healthcheck = async (port: number) => {
  const [command, ...args] = healthcheckCommand()
  expect(command).toBe("node")
  return runCommand(process.execPath, args, { cwd: tmpdir(), env: { PORT: String(port) }, timeoutMs: 10_000 })
}

describe("the compiled service (npm run build)", () => {
  it("runs from dist/main.js: ready, the console served, the image's health check passing, and a clean exit on SIGTERM", async () => {
    expect(existsSync(join(dist, "main.js"))).toBe(true)
    const { child, exited, port } = await startCompiled(scratch("restock-dist-"))
    try {
      const ready = await fetch(`http://127.0.0.1:${port}/health/ready`)
      expect(ready.status).toBe(200)
      // The console's files are copied beside the compiled module that serves them.
      const page = await fetch(`http://127.0.0.1:${port}/`)
      expect(page.status).toBe(200)
      expect(await page.text()).toContain("restock console")
      const script = await fetch(`http://127.0.0.1:${port}/console/console.js`)
      expect(script.status).toBe(200)
      const product = await fetch(`http://127.0.0.1:${port}/admin/products/1`, {
        method: "PUT",
        headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
        body: JSON.stringify({ name: "Blue kettle", stock: 3 })
      })
      expect(product.status).toBe(200)
      expect(await product.json()).toMatchObject({ id: 1, name: "Blue kettle", stock: 3, stockStatus: "IN_STOCK" })

      expect((await healthcheck(port)).code).toBe(0)
    } finally {
      child.kill("SIGTERM")
    }
    expect(await exited).toBe(0)
    // Nothing answers any more: the health check says so.
    expect((await healthcheck(port)).code).toBe(1)
  }, 60_000)

  it("imports nothing but Node's own modules and the production dependencies (the image installs no others)", () => {
    const allowed = new Set(Object.keys(manifest.dependencies))
    const builtins = new Set(builtinModules)
    const strays: Array<string> = []
    let imports = 0
    for (const file of filesUnder(dist).filter((f) => f.endsWith(".js") && !f.includes("/Http/Console/"))) {
      // TypeScript's own scanner finds every import and dynamic import (and none in comments).
      for (const { fileName: specifier } of ts.preProcessFile(readFileSync(file, "utf8"), true, true).importedFiles) {
        imports++
        if (specifier.startsWith(".") || specifier.startsWith("node:") || builtins.has(specifier)) continue
        const name = specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : specifier.split("/")[0]!
        if (!allowed.has(name)) strays.push(`${relative(dist, file)}: ${specifier}`)
      }
    }
    expect(imports).toBeGreaterThan(100)
    expect(strays).toEqual([])
  })
})
