/**
 * A bench script in a Node process of its own (`node --import tsx <file>`),
 * so that what it measures (its RSS) is not shared with the bench runner.
 * Killed when the scope closes if it is still running.
 */
import { Deferred, Duration, Effect, type Scope } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const repositoryRoot = fileURLToPath(new URL("../../", import.meta.url))

export interface ChildResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `script` (a path from the repository root) to its end, within `timeout`; fails with its output otherwise. */
export const runScript = (
  script: string,
  options: {
    readonly env: Readonly<Record<string, string>>
    readonly nodeArguments?: ReadonlyArray<string> | undefined
    readonly timeout: Duration.DurationInput
  }
): Effect.Effect<ChildResult, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const exited = yield* Deferred.make<ChildResult>()
    let stdout = ""
    let stderr = ""
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        const child = spawn(process.execPath, [...(options.nodeArguments ?? []), "--import", "tsx", script], {
          cwd: repositoryRoot,
          env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...options.env },
          stdio: ["ignore", "pipe", "pipe"]
        })
        child.stdout.on("data", (chunk: Buffer) => {
          stdout += chunk.toString()
        })
        child.stderr.on("data", (chunk: Buffer) => {
          stderr = (stderr + chunk.toString()).slice(-20_000)
        })
        child.on("exit", (code) => Deferred.unsafeDone(exited, Effect.succeed({ code, stdout, stderr })))
        return child
      }),
      (child) => Effect.sync(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"))
    )
    const result = yield* Deferred.await(exited).pipe(
      Effect.timeoutFail({
        duration: options.timeout,
        onTimeout: () => new Error(`${script} did not finish within ${Duration.format(Duration.decode(options.timeout))}\n${stderr}`)
      })
    )
    if (result.code !== 0) return yield* Effect.fail(new Error(`${script} exited with ${result.code}\n${result.stderr}`))
    return result
  })
