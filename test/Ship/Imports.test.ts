/**
 * The service imports Effect's packages module by module. Node loads a whole
 * package for an import of its index: `effect`'s and `@effect/platform`'s
 * indexes held ~50 MiB of a process' resident memory that the modules it
 * uses do not (measured at import; bench/README.md, the idle footprint).
 */
import { readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"
import ts from "typescript"
import { describe, expect, it } from "vitest"
import { repositoryRoot } from "../support/Process.js"

const source = join(repositoryRoot, "src")
const barrels = new Set([
  "effect",
  "@effect/platform",
  "@effect/platform-node",
  "@effect/sql",
  "@effect/sql-mysql2",
  "@effect/sql-sqlite-node",
  "@effect/experimental",
  "@effect/opentelemetry"
])

describe("the service's imports", () => {
  it("name a module of each Effect package, never its index", () => {
    const files = readdirSync(source, { recursive: true }).map(String).filter((file) => file.endsWith(".ts"))
    const offenders: Array<string> = []
    let imports = 0
    for (const file of files) {
      const text = readFileSync(join(source, file), "utf8")
      for (const { fileName: specifier } of ts.preProcessFile(text, true, true).importedFiles) {
        imports++
        if (barrels.has(specifier)) offenders.push(`${relative(repositoryRoot, join(source, file))}: "${specifier}"`)
      }
    }
    expect(imports).toBeGreaterThan(300)
    expect(offenders).toEqual([])
  })
})
