/** Progress lines while a bench runs (stderr, so that stdout holds only the figures). */
export const say = (line: string): void => {
  process.stderr.write(`  · ${line}\n`)
}
