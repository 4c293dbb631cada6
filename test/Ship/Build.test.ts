/**
 * What ships, run for real: `npm run build` compiles the service to `dist/`,
 * `node dist/main.js` serves it (what the image's CMD runs) and answers the
 * image's own health check, and `npm pack` yields a package that a scratch
 * project installs offline, type-checks against and runs.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs"
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
/** The cache npm was told to use (`npm test` passes it on as npm_config_cache), where the repository's install left every tarball. */
const npmCache: Record<string, string> = process.env.npm_config_cache ? { npm_config_cache: process.env.npm_config_cache } : {}

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

/**
 * `node dist/main.js` (or another script that runs it) on a fresh SQLite file and a random port;
 * resolves with its port once it listens.
 */
const startCompiled = (dataDir: string, script = join(dist, "main.js")) =>
  new Promise<{ readonly child: ChildProcess; readonly port: number; readonly exited: Promise<number | null> }>(
    (resolve, reject) => {
      const child = spawn(process.execPath, [script], {
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
        reject(new Error(`${script} did not listen within 30 s:\n${output}`))
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
        reject(new Error(`${script} exited with ${code} before listening:\n${output}`))
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

  it("npm start (scripts/start.mjs) rebuilds dist/ only when a source is newer, then serves the compiled service", async () => {
    const startScript = join(repositoryRoot, "scripts", "start.mjs")
    const ensureBuilt = () => runCommand(process.execPath, [startScript, "build"], { cwd: repositoryRoot, env: {}, timeoutMs: 120_000 })
    const current = await ensureBuilt()
    expect(current.code).toBe(0)
    expect(current.stderr).not.toContain("building dist/")

    // A source saved after the build: the next start compiles again first.
    const stamp = join(dist, ".built")
    const stampBefore = statSync(stamp).mtimeMs
    const source = join(repositoryRoot, "src", "main.ts")
    utimesSync(source, new Date(), new Date(stampBefore + 2_000))
    const rebuilt = await ensureBuilt()
    expect(rebuilt.code).toBe(0)
    expect(rebuilt.stderr).toContain("building dist/")
    expect(statSync(stamp).mtimeMs).toBeGreaterThanOrEqual(statSync(source).mtimeMs)

    const { child, exited, port } = await startCompiled(scratch("restock-start-"), startScript)
    try {
      expect((await fetch(`http://127.0.0.1:${port}/health/ready`)).status).toBe(200)
    } finally {
      child.kill("SIGTERM")
    }
    expect(await exited).toBe(0)
  }, 180_000)

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

// ---------------------------------------------------------------------------
// The library, packed and installed

/** The scratch project's program: restock composed with a Notifier of its own, on the embedded database. */
const scratchProgram = `
import { Effect, Layer } from "effect"
import { Config, Layers, Notifier, ProductId, Repo, Restock, type Round, UserId } from "restock"

const sent: Array<number> = []
const notifier = Layer.succeed(Notifier, { send: (n) => Effect.sync(() => void sent.push(n.userId)) })

// The types are the package's own: a plain number is not a product id.
// @ts-expect-error ProductId is branded
const notAnId: ProductId = 7
void notAnId

const program = Effect.gen(function*() {
  const repo = yield* Repo
  const restock = yield* Restock
  const product = yield* repo.upsertProduct(ProductId.make(1), { name: "Blue kettle" })
  for (const user of [1, 2, 3]) yield* repo.subscribe(product.id, UserId.make(user))
  const opened = yield* restock.trigger(product.id, { stock: 5 })
  const done: Round = yield* restock.awaitRound(product.id, opened.restockRound)
  console.log(JSON.stringify({ status: done.status, sentCount: done.sentCount, sent }))
})

const services = Layer.unwrapEffect(Effect.map(Config.AppConfig, (config) => Layers.servicesWith(config, notifier)))
Effect.runPromise(program.pipe(Effect.provide(services), Effect.scoped))
`

/** The README's client example, as written between its markers. */
const readmeClientExample = (): string => {
  const readme = readFileSync(join(repositoryRoot, "README.md"), "utf8")
  const block = /<!-- client:start -->\s*```ts\n([\s\S]*?)```\s*<!-- client:end -->/.exec(readme)
  if (block === null) throw new Error("README.md has no client example between <!-- client:start --> and <!-- client:end -->")
  return block[1]!
}

/**
 * A lockfile for the scratch project: the package from its tarball, and every
 * production dependency at the version and place this repository's lockfile
 * has it. `npm ci --offline` then installs from npm's cache (which the
 * repository's own `npm ci` filled) and never asks the registry.
 */
const scratchLockfile = (tarball: string, scratchDependencies: Record<string, string>) => {
  const lock = JSON.parse(readFileSync(join(repositoryRoot, "package-lock.json"), "utf8"))
  const packages: Record<string, unknown> = {
    "": { name: "scratch", dependencies: scratchDependencies },
    "node_modules/restock": {
      version: manifest.version,
      resolved: `file:${tarball}`,
      license: manifest.license,
      dependencies: manifest.dependencies,
      engines: manifest.engines
    }
  }
  for (const [path, entry] of Object.entries<{ readonly dev?: boolean }>(lock.packages)) {
    if (path !== "" && entry.dev !== true) packages[path] = entry
  }
  return { name: "scratch", lockfileVersion: 3, requires: true, packages }
}

describe("the packed library (npm pack)", () => {
  it("installs into a scratch project offline, type-checks against its types, and runs a round there", async () => {
    const packed = scratch("restock-pack-")
    // The build ran above; `npm pack` would run it again through `prepack`.
    const pack = await runCommand("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", packed], {
      cwd: repositoryRoot,
      env: {},
      timeoutMs: 60_000
    })
    expect(pack.code, pack.stderr).toBe(0)
    const [{ filename, files }] = JSON.parse(pack.stdout) as [{ filename: string; files: Array<{ path: string }> }]
    const paths = files.map((file) => file.path)
    expect(paths).toEqual(expect.arrayContaining(["package.json", "README.md", "dist/index.js", "dist/index.d.ts", "dist/main.js", "dist/Http/Console/index.html"]))
    // The compiled library only: no sources, tests, benches or source maps.
    expect(paths.filter((path) => !path.startsWith("dist/") && !["package.json", "README.md"].includes(path))).toEqual([])
    expect(paths.filter((path) => path.endsWith(".map"))).toEqual([])

    const project = scratch("restock-scratch-")
    cpSync(join(packed, filename), join(project, filename))
    const dependencies = {
      restock: `file:${filename}`,
      effect: manifest.dependencies.effect,
      "@effect/platform": manifest.dependencies["@effect/platform"]
    }
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "scratch", private: true, type: "module", dependencies }, null, 2))
    writeFileSync(join(project, "package-lock.json"), JSON.stringify(scratchLockfile(filename, dependencies), null, 2))
    // Install scripts are skipped: better-sqlite3's would compile its addon (minutes, and headers from the
    // network where none is cached); the addon this repository's install built takes its place.
    const install = await runCommand("npm", ["ci", "--offline", "--ignore-scripts", "--no-audit", "--no-fund"], {
      cwd: project,
      env: npmCache,
      timeoutMs: 120_000
    })
    expect(install.code, `${install.stdout}\n${install.stderr}`).toBe(0)
    const addon = join("node_modules", "better-sqlite3", "build", "Release")
    mkdirSync(join(project, addon), { recursive: true })
    cpSync(join(repositoryRoot, addon, "better_sqlite3.node"), join(project, addon, "better_sqlite3.node"))

    writeFileSync(join(project, "main.ts"), scratchProgram)
    writeFileSync(join(project, "client.ts"), readmeClientExample())
    writeFileSync(join(project, "tsconfig.json"), JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        lib: ["ES2022", "DOM"],
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        skipLibCheck: true,
        outDir: "out"
      },
      files: ["main.ts", "client.ts"]
    }, null, 2))
    const tsc = join(repositoryRoot, "node_modules", "typescript", "bin", "tsc")
    const typecheck = await runCommand(process.execPath, [tsc, "-p", "."], { cwd: project, env: {}, timeoutMs: 60_000 })
    expect(typecheck.code, typecheck.stdout).toBe(0)

    const run = await runCommand(process.execPath, ["out/main.js"], {
      cwd: project,
      env: { DATABASE_URL: `sqlite:${join(project, "scratch.sqlite")}` },
      timeoutMs: 30_000
    })
    expect(run.code, run.stderr).toBe(0)
    // Its own line among the service's logs.
    const line = run.stdout.split("\n").find((l) => l.startsWith(`{"status"`))
    expect(line, run.stdout).toBeDefined()
    expect(JSON.parse(line!)).toEqual({ status: "COMPLETED", sentCount: 3, sent: [1, 2, 3] })
  }, 240_000)
})
