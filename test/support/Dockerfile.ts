/**
 * The repository's Dockerfile as dockerfile-ast (the parser of Docker's
 * language server) reads it: its stages, each with the instructions after its
 * FROM, and the health check's command.
 */
import { DockerfileParser, type Instruction } from "dockerfile-ast"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { repositoryRoot } from "./Process.js"

export interface Stage {
  readonly name: string | null
  readonly image: string | null
  readonly instructions: ReadonlyArray<Instruction>
}

export const stages = (): ReadonlyArray<Stage> => {
  const dockerfile = DockerfileParser.parse(readFileSync(join(repositoryRoot, "Dockerfile"), "utf8"))
  const froms = dockerfile.getFROMs()
  const found: Array<{ name: string | null; image: string | null; instructions: Array<Instruction> }> = []
  for (const instruction of dockerfile.getInstructions()) {
    const from = froms.find((f) => f.getRange().start.line === instruction.getRange().start.line)
    if (from !== undefined) found.push({ name: from.getBuildStage(), image: from.getImage(), instructions: [] })
    else if (found.length === 0) throw new Error(`${instruction.getKeyword()} before the first FROM`)
    else found[found.length - 1]!.instructions.push(instruction)
  }
  return found
}

export const instructions = (stage: Stage, keyword: string): ReadonlyArray<Instruction> =>
  stage.instructions.filter((i) => i.getKeyword() === keyword)

/** The health check's command in exec form, `HEALTHCHECK [flags] CMD ["node", "-e", "..."]`: the array after `CMD`. */
export const healthcheckCommand = (): ReadonlyArray<string> => {
  const [healthcheck] = instructions(stages().at(-1)!, "HEALTHCHECK")
  const content = healthcheck?.getArgumentsContent() ?? ""
  if (!content.startsWith("CMD [")) throw new Error(`the health check is not in exec form: ${content}`)
  return JSON.parse(content.slice("CMD ".length))
}
