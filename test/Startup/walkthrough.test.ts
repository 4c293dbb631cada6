/**
 * The README's walk-through, run as written against a freshly started
 * service, so that it cannot rot.
 */
import { spawn, type ChildProcess } from "node:child_process"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, expect, it } from "vitest"
import { repositoryRoot, runBash } from "../support/Process.js"

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))))
    })
  })

let service: ChildProcess | undefined
let directory = ""
let baseUrl = ""

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "restock-walkthrough-"))
  const port = await freePort()
  baseUrl = `http://127.0.0.1:${port}`
  service = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: repositoryRoot,
    env: {
      PATH: process.env.PATH ?? "",
      PORT: String(port),
      ADMIN_TOKEN: "walkthrough",
      DATABASE_URL: `sqlite:${join(directory, "restock.sqlite")}`
    },
    stdio: "ignore"
  })
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    const ready = await fetch(`${baseUrl}/health/ready`, { signal: AbortSignal.timeout(2_000) }).then((response) => response.ok, () => false)
    if (ready) return
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error("the service did not become ready within 30 s")
}, 60_000)

afterAll(async () => {
  service?.kill("SIGTERM")
  await rm(directory, { recursive: true, force: true })
})

it("the README walk-through notifies both shoppers and completes the round", async () => {
  const readme = await readFile(join(repositoryRoot, "README.md"), "utf8")
  const section = /<!-- walkthrough:start -->\s*```bash\n([\s\S]*?)```\s*<!-- walkthrough:end -->/.exec(readme)
  expect(section, "README.md has a walkthrough section").not.toBeNull()
  const script = section![1]!.replaceAll("http://127.0.0.1:8080", baseUrl)

  const finished = await runBash(script, directory, 30_000)
  expect(finished.stderr).toBe("")
  expect(finished.code).toBe(0)
  const out = finished.stdout

  expect(out).toContain(`"name":"Blue kettle"`)
  expect(out).toContain(`{"productId":1,"userId":1,"active":true`)
  expect(out).toContain(`{"productId":1,"userId":2,"active":true`)
  // The round, as opened (202) and as it ended.
  expect(out).toMatch(/"restockRound":1,"status":"IN_PROGRESS"/)
  expect(out).toMatch(/"status":"COMPLETED","lastSentUserId":2,"sentCount":2/)
  // Recipients, in send order.
  expect(out).toMatch(/"items":\[\{"userId":1,"sentAt":"[^"]+"\},\{"userId":2,"sentAt":"[^"]+"\}\],"nextAfterId":null/)
  // Alice's stream: exactly one notification, with the delivery's id.
  expect(out.match(/event: restock/g)).toHaveLength(1)
  expect(out).toMatch(/id: \d+\nevent: restock\ndata: \{"productId":1,"productName":"Blue kettle","restockRound":1,"sentAt":"/)
  // The progress stream: nothing yet, the round in progress, then completed.
  expect(out).toMatch(/event: progress\ndata: null\n\nevent: progress\ndata: \{[^\n]*"status":"IN_PROGRESS"[\s\S]*"status":"COMPLETED"/)
}, 60_000)
