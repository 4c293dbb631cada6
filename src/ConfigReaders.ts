/**
 * How a variable is read, shared by every module that reads one (`Config.ts`
 * for the service's own, `Observability/Tracing.ts` for OpenTelemetry's): an
 * empty value counts as unset, and a URL is checked for its scheme.
 */
import * as Config from "effect/Config"
import * as Either from "effect/Either"
import * as Option from "effect/Option"

/** A variable that is unset or empty (or only spaces) reads as `None`. */
export const optionalString = (name: string): Config.Config<Option.Option<string>> =>
  Config.string(name).pipe(
    Config.option,
    Config.map(Option.filter((value) => value.trim() !== ""))
  )

/** A URL with one of `protocols` (`"https:"`), or why `raw` is not one. */
export const parseUrl = (raw: string, protocols: ReadonlyArray<string>): Either.Either<URL, string> => {
  try {
    const url = new URL(raw)
    return protocols.includes(url.protocol)
      ? Either.right(url)
      : Either.left(`expected a ${protocols.map((p) => p.replace(":", "://")).join(" or ")} URL, got "${url.protocol}"`)
  } catch {
    return Either.left(`not a valid URL: "${raw}"`)
  }
}
