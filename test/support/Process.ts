/**
 * Runs a TypeScript entry point of this repository from its sources
 * (through tsx) or a bash script as a child process, and collects what it
 * printed, bounded in time.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

export const repositoryRoot = fileURLToPath(new URL("../../", import.meta.url))

export interface Finished {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `command` with `env` added to a clean environment; kills it after `timeoutMs`. */
export const runCommand = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly env: Record<string, string>; readonly timeoutMs: number }
): Promise<Finished> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...options.env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => (stdout += chunk))
    child.stderr.on("data", (chunk) => (stderr += chunk))
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs)
    child.on("error", reject)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })

/** Runs a TypeScript entry point of the repository, e.g. `src/main.ts`. */
export const runEntry = (entry: string, env: Record<string, string>, timeoutMs = 30_000): Promise<Finished> =>
  runCommand(process.execPath, ["--import", "tsx", entry], { cwd: repositoryRoot, env, timeoutMs })

/** Runs a bash script (with `-euo pipefail`) in `cwd`. */
export const runBash = (script: string, cwd: string, timeoutMs = 30_000): Promise<Finished> =>
  runCommand("bash", ["-euo", "pipefail", "-c", script], { cwd, env: {}, timeoutMs })
