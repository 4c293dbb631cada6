/**
 * `GET /metrics` read the way Prometheus reads it, with a maintained parser of
 * the text format, for the observability tests.
 */
import parsePrometheusTextFormat, { type Family } from "parse-prometheus-text-format"

export interface Scrape {
  readonly contentType: string | null
  readonly text: string
  readonly families: ReadonlyMap<string, Family>
  /** The value of one sample of a counter or gauge; fails when it is not there. */
  readonly value: (name: string, labels?: Record<string, string>) => number
  /** The sample count of a histogram. */
  readonly histogramCount: (name: string) => number
  /** How many samples of a histogram were above `bound` (one of its bucket bounds). */
  readonly histogramAbove: (name: string, bound: number) => number
}

const sameLabels = (actual: Readonly<Record<string, string>> | undefined, wanted: Record<string, string>) => {
  const have = actual ?? {}
  const keys = Object.keys(wanted)
  return keys.length === Object.keys(have).length && keys.every((key) => have[key] === wanted[key])
}

export const scrape = async (baseUrl: string): Promise<Scrape> => {
  const response = await fetch(`${baseUrl}/metrics`)
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`)
  const text = await response.text()
  const families = new Map(parsePrometheusTextFormat(text).map((family) => [family.name, family]))
  const family = (name: string) => {
    const found = families.get(name)
    if (found === undefined) throw new Error(`no metric ${name} in:\n${text}`)
    return found
  }
  return {
    contentType: response.headers.get("content-type"),
    text,
    families,
    value: (name, labels = {}) => {
      const sample = family(name).metrics.find((metric) => sameLabels(metric.labels, labels))
      if (sample?.value === undefined) throw new Error(`no sample ${name}${JSON.stringify(labels)}`)
      return Number(sample.value)
    },
    histogramCount: (name) => Number(family(name).metrics[0]?.count),
    histogramAbove: (name, bound) => {
      const sample = family(name).metrics[0]
      const bucket = Object.entries(sample?.buckets ?? {}).find(([le]) => Number(le) === bound)
      if (sample === undefined || bucket === undefined) throw new Error(`no bucket le=${bound} in ${name}`)
      return Number(sample.count) - Number(bucket[1])
    }
  }
}
