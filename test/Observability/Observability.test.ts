/**
 * What an operator scrapes, reads and traces, against the real service
 * (`src/main.ts`, spawned): `GET /metrics` parsed as Prometheus parses it,
 * `LOG_FORMAT=json` lines, and spans received by a local OTLP/HTTP endpoint.
 */
import { ConfigProvider, Effect, Either, Option } from "effect"
import { createParser, type EventSourceMessage } from "eventsource-parser"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Tracing from "../../src/Observability/Tracing.js"
import { adminRequest, adminToken, type RunningService, startService, subscribeMany } from "../Console/Harness.js"
import { scrape } from "./Scrape.js"
import { redactCredentials } from "../../src/Observability/Redact.js"

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `probe` until `check` holds, failing with the last value after `withinMs`. */
const eventually = async <A>(what: string, probe: () => Promise<A>, check: (value: A) => boolean, withinMs = 20_000) => {
  const deadline = Date.now() + withinMs
  while (true) {
    const value = await probe()
    if (check(value)) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`)
    await sleep(50)
  }
}

const finishedRound = (service: RunningService, productId: number, restockRound: number) =>
  eventually(
    `round ${restockRound} of product ${productId} to end`,
    () => adminRequest(service, "GET", `/products/${productId}/notifications/${restockRound}`),
    (round) => round.status !== "IN_PROGRESS"
  )

interface EventStream {
  readonly events: Array<EventSourceMessage>
  readonly close: () => void
}

/** An event stream over fetch, parsed as EventSource would; resolves once the response has begun. */
const openEvents = async (url: string, headers: Record<string, string>): Promise<EventStream> => {
  const abort = new AbortController()
  const response = await fetch(url, { headers: { accept: "text/event-stream", ...headers }, signal: abort.signal })
  if (response.status !== 200) throw new Error(`${url} answered ${response.status}: ${await response.text()}`)
  const events: Array<EventSourceMessage> = []
  const parser = createParser({ onEvent: (event) => events.push(event) })
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  void (async () => {
    try {
      while (true) {
        const { done, value } = await reader.read()
        if (done) return
        parser.feed(value)
      }
    } catch {
      // Aborted by `close`.
    }
  })()
  return { events, close: () => abort.abort() }
}

const restockCounters = ["outcome", "status", "kind", "le"]

describe("GET /metrics and JSON logs", () => {
  let service: RunningService

  beforeAll(async () => {
    service = await startService()
  })
  afterAll(async () => {
    await service?.stop()
  })

  it("is public Prometheus text: every series of the service at 0 before any round, and the process's own figures", async () => {
    const metrics = await scrape(service.baseUrl)
    expect(metrics.contentType).toMatch(/^text\/plain; version=0\.0\.4/)
    for (const outcome of ["ok", "transient", "permanent"]) {
      expect(metrics.value("restock_sends_total", { outcome })).toBe(0)
    }
    for (const status of ["COMPLETED", "CANCELED_BY_SOLD_OUT", "CANCELED_BY_ERROR"]) {
      expect(metrics.value("restock_rounds_finished_total", { status })).toBe(0)
    }
    expect(metrics.value("restock_send_retries_total")).toBe(0)
    expect(metrics.value("restock_sse_connections")).toBe(0)
    expect(metrics.value("restock_sse_events_total", { kind: "live" })).toBe(0)
    expect(metrics.value("restock_sse_events_total", { kind: "replayed" })).toBe(0)
    expect(metrics.value("restock_sse_slow_clients_dropped_total")).toBe(0)
    expect(metrics.families.get("restock_sends_total")?.type).toBe("COUNTER")
    expect(metrics.families.get("restock_send_duration_seconds")?.type).toBe("HISTOGRAM")

    expect(metrics.value("process_resident_memory_bytes")).toBeGreaterThan(10_000_000)
    expect(metrics.value("nodejs_heap_used_bytes")).toBeGreaterThan(0)
    expect(metrics.value("process_cpu_user_seconds_total")).toBeGreaterThan(0)
    const startedAt = metrics.value("process_start_time_seconds")
    expect(startedAt).toBeGreaterThan(Date.now() / 1000 - 300)
    expect(startedAt).toBeLessThanOrEqual(Date.now() / 1000)
    expect(metrics.value("nodejs_eventloop_lag_p99_seconds")).toBeGreaterThanOrEqual(0)
    expect(metrics.value("nodejs_eventloop_lag_max_seconds")).toBeLessThan(5)
  })

  it("after rounds, the counters match their sentCount and status, and SSE streams are counted", async () => {
    await adminRequest(service, "PUT", "/admin/products/1", { name: "Blue sneakers", stock: 10 })
    await subscribeMany(service, 1, 1, 25)
    const { token } = await adminRequest(service, "POST", "/admin/users/1/token")
    const live = await openEvents(`${service.baseUrl}/users/1/notifications/stream`, { authorization: `Bearer ${token}` })
    expect((await scrape(service.baseUrl)).value("restock_sse_connections")).toBe(1)

    await adminRequest(service, "POST", "/products/1/notifications/re-stock")
    const round = await finishedRound(service, 1, 1)
    expect(round).toMatchObject({ status: "COMPLETED", sentCount: 25 })
    await eventually("the live notification", async () => live.events.length, (count) => count === 1)

    let metrics = await scrape(service.baseUrl)
    expect(metrics.value("restock_sends_total", { outcome: "ok" })).toBe(round.sentCount)
    expect(metrics.value("restock_sends_total", { outcome: "transient" })).toBe(0)
    expect(metrics.value("restock_sends_total", { outcome: "permanent" })).toBe(0)
    expect(metrics.value("restock_deliveries_recorded_total")).toBe(round.sentCount)
    expect(metrics.value("restock_rounds_finished_total", { status: "COMPLETED" })).toBe(1)
    expect(metrics.value("restock_rounds_finished_total", { status: "CANCELED_BY_SOLD_OUT" })).toBe(0)
    expect(metrics.histogramCount("restock_round_duration_seconds")).toBe(1)
    expect(metrics.histogramCount("restock_send_duration_seconds")).toBe(round.sentCount)
    expect(metrics.histogramCount("restock_rate_limit_wait_seconds")).toBe(round.sentCount)
    expect(metrics.histogramCount("restock_send_start_lag_seconds")).toBe(round.sentCount)
    expect(metrics.value("restock_sse_events_total", { kind: "live" })).toBe(1)
    expect(metrics.value("restock_sse_events_total", { kind: "replayed" })).toBe(0)

    // A reconnecting listener is replayed what it missed: counted apart from live events.
    const replay = await openEvents(`${service.baseUrl}/users/1/notifications/stream`, {
      authorization: `Bearer ${token}`,
      "last-event-id": "0"
    })
    await eventually("the replayed notification", async () => replay.events.length, (count) => count === 1)
    metrics = await scrape(service.baseUrl)
    expect(metrics.value("restock_sse_events_total", { kind: "replayed" })).toBe(1)
    expect(metrics.value("restock_sse_events_total", { kind: "live" })).toBe(1)
    expect(metrics.value("restock_sse_connections")).toBe(2)
    live.close()
    replay.close()
    await eventually(
      "the closed streams to be uncounted",
      async () => (await scrape(service.baseUrl)).value("restock_sse_connections"),
      (open) => open === 0
    )

    // A round that starts sold out sends nothing and is counted by its status.
    await adminRequest(service, "PUT", "/admin/products/2", { name: "Red scarf", stock: 0 })
    await subscribeMany(service, 2, 1, 3)
    await adminRequest(service, "POST", "/products/2/notifications/re-stock")
    expect(await finishedRound(service, 2, 1)).toMatchObject({ status: "CANCELED_BY_SOLD_OUT", sentCount: 0 })
    metrics = await scrape(service.baseUrl)
    expect(metrics.value("restock_rounds_finished_total", { status: "CANCELED_BY_SOLD_OUT" })).toBe(1)
    expect(metrics.value("restock_rounds_finished_total", { status: "COMPLETED" })).toBe(1)
    expect(metrics.value("restock_sends_total", { outcome: "ok" })).toBe(25)
    expect(metrics.histogramCount("restock_round_duration_seconds")).toBe(2)

    // Counts only: the service's labels say how things went, never who they went to.
    for (const family of metrics.families.values()) {
      if (!family.name.startsWith("restock_")) continue
      for (const sample of family.metrics) {
        for (const label of Object.keys(sample.labels ?? {})) expect(restockCounters).toContain(label)
      }
    }
  })

  it("writes one JSON object per line, the round's lines annotated with its product and round; scrapes are not logged", async () => {
    const entries = service.lines().filter((line) => line.trim() !== "").map((line) => JSON.parse(line))
    expect(entries.length).toBeGreaterThan(0)
    const messageOf = (entry: any): string => [entry.message].flat().filter((part) => typeof part === "string").join(" ")
    const ended = entries.filter((entry) => messageOf(entry).startsWith("round ended"))
    expect(ended.map((entry) => [messageOf(entry), entry.annotations.productId, entry.annotations.restockRound]))
      .toEqual([["round ended COMPLETED", 1, 1], ["round ended CANCELED_BY_SOLD_OUT", 2, 1]])
    for (const entry of ended) expect(entry.logLevel).toBe("INFO")
    // The access log records API calls, but not every scrape.
    const urls = entries.map((entry) => entry.annotations?.["http.url"]).filter((url) => url !== undefined)
    expect(urls).toContain("/products/1/notifications/re-stock")
    expect(urls.filter((url) => url.startsWith("/metrics"))).toEqual([])
  })
})

// ---------------------------------------------------------------------------
// Tracing

interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly name: string
  readonly attributes: Record<string, unknown>
}

/** A local OTLP/HTTP endpoint (JSON encoding) that keeps every export it receives. */
const startCollector = async () => {
  const bodies: Array<{ readonly path: string; readonly contentType: string | undefined; readonly text: string }> = []
  const server: Server = createServer((request, response) => {
    let text = ""
    request.setEncoding("utf8")
    request.on("data", (chunk) => (text += chunk))
    request.on("end", () => {
      bodies.push({ path: request.url ?? "", contentType: request.headers["content-type"], text })
      response.writeHead(200, { "content-type": "application/json" }).end("{}")
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const attributeValue = (value: any): unknown =>
    value?.stringValue ?? (value?.intValue !== undefined ? Number(value.intValue) : value?.doubleValue ?? value?.boolValue)
  const spans = (): Array<ReceivedSpan> =>
    bodies.flatMap(({ text }) =>
      JSON.parse(text).resourceSpans.flatMap((resource: any) =>
        resource.scopeSpans.flatMap((scope: any) =>
          scope.spans.map((span: any) => ({
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId || undefined,
            name: span.name,
            attributes: Object.fromEntries(
              (span.attributes ?? []).map((attribute: any) => [attribute.key, attributeValue(attribute.value)])
            )
          }))
        )
      )
    )
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

describe("tracing over OTLP/HTTP", () => {
  let collector: Awaited<ReturnType<typeof startCollector>>
  let service: RunningService

  beforeAll(async () => {
    collector = await startCollector()
    service = await startService({
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_BSP_SCHEDULE_DELAY: "100",
        OTEL_SERVICE_NAME: "restock-under-test"
      }
    })
  })
  afterAll(async () => {
    await service?.stop()
    await collector?.close()
  })

  it("exports trigger → round → pages of sends, never a span per send, and never a credential", async () => {
    await adminRequest(service, "PUT", "/admin/products/1", { name: "Blue sneakers", stock: 10 })
    await subscribeMany(service, 1, 1, 1100)
    // The admin stream takes its token in the URL, which the server's span records.
    const progress = await openEvents(
      `${service.baseUrl}/admin/products/1/notifications/stream?access_token=${adminToken}`,
      {}
    )
    await adminRequest(service, "POST", "/products/1/notifications/re-stock")
    expect(await finishedRound(service, 1, 1)).toMatchObject({ status: "COMPLETED", sentCount: 1100 })
    progress.close()

    const spans = await eventually(
      "the round's spans at the collector",
      async () => collector.spans(),
      (received) =>
        received.filter((span) => span.name === "restock.page").length === 3 &&
        received.some((span) => span.name === "restock.round") &&
        received.some((span) => span.name.startsWith("http.server") && String(span.attributes["url.path"]).endsWith("/stream"))
    )
    expect(collector.bodies.every((body) => body.path === "/v1/traces")).toBe(true)
    expect(collector.bodies[0]!.contentType).toMatch(/^application\/json/)

    const trigger = spans.find((span) => span.name === "restock.trigger")!
    const round = spans.find((span) => span.name === "restock.round")!
    expect(round.attributes).toMatchObject({ productId: 1, restockRound: 1 })
    expect(round.traceId).toBe(trigger.traceId)
    expect(round.parentSpanId).toBe(trigger.spanId)
    const pages = spans.filter((span) => span.name === "restock.page")
    for (const page of pages) {
      expect(page.traceId).toBe(round.traceId)
      expect(page.parentSpanId).toBe(round.spanId)
    }
    expect(pages.map((page) => [page.attributes.page, page.attributes.sends, page.attributes.succeeded]))
      .toEqual([[1, 500, 500], [2, 500, 500], [3, 100, 100]])
    // The whole round is a handful of spans, not a thousand.
    expect(spans.filter((span) => span.traceId === round.traceId).length).toBeLessThan(40)

    const exported = collector.bodies.map((body) => body.text).join("\n")
    expect(exported).toContain("restock-under-test")
    expect(exported.includes(adminToken), "the admin token was exported").toBe(false)
    expect(exported).toContain("access_token=REDACTED")
  }, 120_000)
})

describe("tracing configuration", () => {
  const configFrom = (env: Record<string, string>) =>
    Effect.runSync(Effect.either(Effect.withConfigProvider(Tracing.config, ConfigProvider.fromMap(new Map(Object.entries(env))))))

  it("exports nothing and installs nothing when no endpoint is set (or it is empty)", () => {
    expect(configFrom({})).toEqual(Either.right(Option.none()))
    expect(configFrom({ OTEL_EXPORTER_OTLP_ENDPOINT: "  " })).toEqual(Either.right(Option.none()))
    const tracers = Effect.gen(function*() {
      const before = yield* Effect.tracer
      const after = yield* Effect.tracer.pipe(Effect.provide(Tracing.layerConfig))
      return after === before
    }).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map())), Effect.scoped)
    expect(Effect.runSync(tracers)).toBe(true)
  })

  it("reads the OpenTelemetry SDK's variables", () => {
    const settings = configFrom({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/",
      OTEL_EXPORTER_OTLP_HEADERS: "Authorization=Bearer%20abc, x-tenant = shop"
    })
    expect(Either.getOrThrow(settings)).toEqual(Option.some(expect.objectContaining({
      url: "http://collector:4318/v1/traces",
      protocol: "http/protobuf",
      serviceName: "restock",
      headers: { authorization: "Bearer abc", "x-tenant": "shop" }
    })))
    const traces = configFrom({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://ignored:4318",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://collector.example/otlp/traces",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_SERVICE_NAME: "restock-eu"
    })
    expect(Either.getOrThrow(traces)).toEqual(Option.some(expect.objectContaining({
      url: "https://collector.example/otlp/traces",
      protocol: "http/json",
      serviceName: "restock-eu"
    })))
  })

  it("refuses a bad endpoint or protocol, naming the variable", () => {
    const message = (env: Record<string, string>) => {
      const result = configFrom(env)
      return Either.isLeft(result) ? String(result.left) : "accepted"
    }
    expect(message({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" })).toContain("OTEL_EXPORTER_OTLP_ENDPOINT")
    expect(message({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }))
      .toContain("OTEL_EXPORTER_OTLP_PROTOCOL")
  })

  it("scrubs query-string credentials from span attributes", () => {
    expect(redactCredentials("http://h/users/1/notifications/stream?access_token=eyJ.x.y&lastEventId=3"))
      .toBe("http://h/users/1/notifications/stream?access_token=REDACTED&lastEventId=3")
  })
})
