/**
 * The README's library example runs as written: another Effect program
 * composes restock with its own Notifier and awaits a round.
 */
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { expect, it } from "vitest"
import { runEntry } from "../support/Process.js"

it("examples/own-notifier.ts notifies three subscribers through its own Notifier", async () => {
  const directory = await mkdtemp(join(tmpdir(), "restock-example-"))
  try {
    const finished = await runEntry("examples/own-notifier.ts", { DATABASE_URL: `sqlite:${join(directory, "example.sqlite")}` })
    expect(finished.code).toBe(0)
    for (const user of [1, 2, 3]) expect(finished.stdout).toContain(`to user ${user}: Blue kettle is back (round 1)`)
    expect(finished.stdout).toContain("round 1: COMPLETED, 3 sent")
  } finally {
    await rm(directory, { recursive: true, force: true })
  }
}, 60_000)
