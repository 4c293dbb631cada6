/**
 * `npm start` and `npm run migrate`: the compiled service (`dist/`), built
 * first when it is missing or older than the sources. Plain JavaScript, run
 * by `node` itself, and the service is imported into this same process: no
 * TypeScript loader and no wrapper process stay resident (tsx's wrapper and
 * its in-process compiler held ~330 MB at idle where the compiled service
 * holds ~100-130 MB; see bench/README.md).
 *
 *   node scripts/start.mjs [main|migrate|build]   (build: only make sure dist/ is current)
 */
import { spawnSync } from "node:child_process"
import { existsSync, readdirSync, statSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const entry = process.argv[2] ?? "main"
if (entry !== "main" && entry !== "migrate" && entry !== "build") {
  console.error(`restock: unknown entry "${entry}": choose main, migrate or build`)
  process.exit(2)
}

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
/** Written by `npm run build` once everything is in `dist/`. */
const stamp = join(root, "dist", ".built")

/** The newest modification time among the files a build reads. */
const newestSource = () => {
  let newest = 0
  const files = [
    ...readdirSync(join(root, "src"), { recursive: true }).map((file) => join("src", String(file))),
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "tsconfig.build.json"
  ]
  for (const file of files) {
    const path = join(root, file)
    if (existsSync(path)) newest = Math.max(newest, statSync(path).mtimeMs)
  }
  return newest
}

const built = () => existsSync(stamp) && statSync(stamp).mtimeMs >= newestSource()

if (!built()) {
  console.error("restock: building dist/ (missing, or older than the sources) …")
  // Under npm, the same npm that runs this script; otherwise the one on the PATH.
  const npm = process.env.npm_execpath
  const result = npm === undefined
    ? spawnSync("npm", ["run", "build", "--silent"], { cwd: root, stdio: "inherit", shell: process.platform === "win32" })
    : spawnSync(process.execPath, [npm, "run", "build", "--silent"], { cwd: root, stdio: "inherit" })
  if (result.status !== 0) {
    console.error("restock: cannot start: the build failed")
    process.exit(1)
  }
}

if (entry !== "build") await import(pathToFileURL(join(root, "dist", `${entry}.js`)).href)
