/**
 * The container image and the compose file, read by the parsers Docker's own
 * tooling is built on (dockerfile-ast, from the Docker language server; yaml):
 * no Docker engine runs where the tests run, so this proves the image's shape
 * — the stages, what each one installs and copies, the user, the command, the
 * health check — and `test/Ship/Build.test.ts` runs what the image would run
 * (the compiled `dist/main.js`, and the health check's command against it).
 */
import type { Instruction } from "dockerfile-ast"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { parse } from "yaml"
import { healthcheckCommand, instructions, type Stage, stages as dockerfileStages } from "../support/Dockerfile.js"
import { repositoryRoot } from "../support/Process.js"

const keyword = instructions
/** An instruction's arguments as the shell or JSON form gives them, flags left out. */
const words = (instruction: Instruction) => instruction.getArguments().map((a) => a.getValue())
const runs = (stage: Stage) => keyword(stage, "RUN").map((i) => i.getArgumentsContent() ?? "")
const copies = (stage: Stage) =>
  keyword(stage, "COPY").map((i) => ({
    from: (i as any).getFromFlag?.()?.getValue() ?? null,
    args: words(i)
  }))

describe("the Dockerfile", () => {
  const stages = dockerfileStages()
  const byName = (name: string) => {
    const stage = stages.find((s) => s.name === name)
    if (stage === undefined) throw new Error(`no stage ${name}; stages: ${stages.map((s) => s.name).join(", ")}`)
    return stage
  }

  it("compiles in a build stage with every dependency, and installs production dependencies alone in another", () => {
    expect(stages.map((s) => s.name)).toEqual(["build", "deps", "runtime"])
    for (const stage of stages) expect(stage.image).toMatch(/^node:20-bookworm-slim$/)

    const build = byName("build")
    const buildRuns = runs(build)
    expect(buildRuns).toContainEqual(expect.stringMatching(/^npm ci\b(?!.*--omit=dev)/))
    expect(buildRuns).toContain("npm run build")
    expect(copies(build).flatMap((c) => c.args)).toEqual(expect.arrayContaining(["src", "tsconfig.build.json", "package-lock.json"]))

    const deps = byName("deps")
    expect(runs(deps)).toContainEqual(expect.stringMatching(/^npm ci --omit=dev\b/))
  })

  it("runs node on the compiled output in a slim stage, as a non-root user, with production dependencies only", () => {
    const runtime = stages.at(-1)!
    expect(runtime.name).toBe("runtime")
    // Nothing is installed or compiled here: the compiled output and the production node_modules are copied in.
    expect(runs(runtime).join("\n")).not.toMatch(/npm (ci|install)|apt-get|g\+\+|tsc|tsx/)
    const copied = copies(runtime)
    expect(copied).toContainEqual({ from: "build", args: ["/app/dist", "./dist"] })
    expect(copied).toContainEqual({ from: "deps", args: ["/app/node_modules", "./node_modules"] })
    // No sources, no dev dependencies: only package.json comes from the build context.
    expect(copied.filter((c) => c.from === null)).toEqual([{ from: null, args: ["package.json", "./"] }])

    const users = keyword(runtime, "USER")
    expect(users).toHaveLength(1)
    expect(words(users[0]!)[0]).not.toMatch(/^(root|0)(:|$)/)
    const cmds = keyword(runtime, "CMD")
    expect(cmds).toHaveLength(1)
    // The user is switched before the command runs, and so before the health check's command.
    const line = (i: Instruction) => i.getRange().start.line
    expect(line(users[0]!)).toBeLessThan(line(cmds[0]!))
    expect(JSON.parse(cmds[0]!.getArgumentsContent()!)).toEqual(["node", "dist/main.js"])
    expect(keyword(runtime, "ENTRYPOINT")).toEqual([])

    const env = keyword(runtime, "ENV").map((i) => i.getArgumentsContent()).join(" ")
    expect(env).toContain("HOST=0.0.0.0")
    expect(env).toContain("NODE_ENV=production")
  })

  it("has a health check that asks the service's readiness endpoint", () => {
    const runtime = stages.at(-1)!
    const [healthcheck, ...more] = keyword(runtime, "HEALTHCHECK")
    expect(more).toEqual([])
    const flags = Object.fromEntries((healthcheck as any).getFlags().map((f: any) => [f.getName(), f.getValue()]))
    expect(Object.keys(flags).sort()).toEqual(["interval", "retries", "timeout"])
    const command = healthcheckCommand()
    expect(command.slice(0, 2)).toEqual(["node", "-e"])
    expect(command[2]).toContain("/health/ready")
  })
})

interface ComposeService {
  readonly image?: string
  readonly build?: string | { readonly context: string; readonly target?: string }
  readonly environment?: Record<string, string | number>
  readonly healthcheck?: { readonly test: ReadonlyArray<string> }
  readonly depends_on?: Record<string, { readonly condition: string }>
  readonly ports?: ReadonlyArray<string>
}

describe("docker-compose.yml", () => {
  const compose = parse(readFileSync(join(repositoryRoot, "docker-compose.yml"), "utf8")) as {
    readonly services: Record<string, ComposeService>
    readonly volumes: Record<string, unknown>
  }

  it("runs the service from this Dockerfile on MySQL and Redis, each waited for by its health check", () => {
    const { app, mysql, redis, ...others } = compose.services
    expect(others).toEqual({})
    expect(mysql!.image).toMatch(/^mysql:8/)
    expect(mysql!.healthcheck!.test).toEqual(expect.arrayContaining(["CMD", "mysqladmin", "ping"]))
    expect(redis!.image).toMatch(/^redis:7/)
    expect(redis!.healthcheck!.test).toEqual(["CMD", "redis-cli", "ping"])

    expect(app!.build).toBe(".")
    expect(app!.depends_on).toEqual({ mysql: { condition: "service_healthy" }, redis: { condition: "service_healthy" } })
    const env = app!.environment!
    expect(String(env.DATABASE_URL)).toMatch(/^mysql:\/\/[^@]+@mysql:3306\//)
    expect(env.REDIS_URL).toBe("redis://redis:6379")
    expect(env.HOST).toBe("0.0.0.0")
    // Published on the host's loopback only.
    expect(app!.ports).toEqual(["127.0.0.1:8080:8080"])
    // The app's own health check is the image's: none overrides it.
    expect(app!.healthcheck).toBeUndefined()
    expect(Object.keys(compose.volumes).sort()).toEqual(["mysql-data", "redis-data"])
  })
})
