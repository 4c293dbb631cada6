/**
 * A property-based fuzzer of the HTTP edge, driven by the service's own
 * OpenAPI document: every operation it lists gets bad path ids, queries,
 * headers, bodies (wrong types, missing and extra fields, huge and fractional
 * numbers, long strings, deep nesting, prototype keys, text that is not
 * JSON, other media types), methods and credentials, over a real socket. An
 * endpoint added to the API is fuzzed because it is in the document.
 *
 * Every request generated is wrong in one way, by construction: the API's own
 * schemas (the ones the server decodes with) confirm that a generated path,
 * query, header or body does not decode, and the rest of the request is
 * valid, so each one has exactly one right answer. The properties assert that
 * answer (the status SPEC §4 gives, a JSON `{ _tag, message }`, a status the
 * document lists for the operation, never a 5xx); afterwards the four tables
 * are what they were, row for row, and the service is still ready. It runs on
 * the embedded adapters and on MariaDB and Redis.
 *
 * Seeded: the seed is printed, and fast-check's failure report names it with
 * the path to the smallest failing case; `FUZZ_SEED=<seed> npx vitest run
 * test/Http/Fuzz.test.ts` replays a finding.
 */
import { HttpApi, OpenApi } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Effect, Either, Option, Schema } from "effect"
import fc from "fast-check"
import { SignJWT } from "jose"
import { ProductId } from "../../src/Domain/Ids.js"
import { Api } from "../../src/Http/Api.js"
import { StockCache } from "../../src/StockCache/StockCache.js"
import { adminToken, asAdmin, databaseSnapshot, jwtSecret, layerServer, request, TestServer } from "../support/Http.js"

const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))

// ---------------------------------------------------------------------------
// The operations, from the document, with the schemas the server decodes with

type Decoder = (input: unknown) => boolean
type AnySchema = Schema.Schema<unknown, unknown, never>

interface Operation {
  readonly [fc.toStringMethod]: () => string
  readonly method: string
  /** As the document writes it: `/products/{productId}`. */
  readonly template: string
  readonly pathParams: ReadonlyArray<string>
  /** The path parameters that are ids (a link's token is any text: the handler refuses a bad one). */
  readonly idParams: ReadonlyArray<string>
  /** The media types its body may have besides JSON, as the document lists them (a form, for one-click unsubscribe). */
  readonly formMediaTypes: ReadonlyArray<string>
  readonly queryParams: ReadonlyArray<string>
  readonly headerParams: ReadonlyArray<string>
  readonly secured: boolean
  readonly acceptsAccessToken: boolean
  /** The statuses the document lists for it. */
  readonly statuses: ReadonlySet<number>
  readonly body: Option.Option<{ readonly properties: ReadonlyArray<string>; readonly valid: fc.Arbitrary<unknown> }>
  readonly decodes: { readonly path: Decoder; readonly query: Decoder; readonly headers: Decoder; readonly body: Decoder }
}

const decoder = (schema: Option.Option<unknown>): Decoder =>
  Option.match(schema, {
    onNone: () => () => true,
    onSome: (schema) => {
      const decode = Schema.decodeUnknownEither(schema as AnySchema)
      return (input) => Either.isRight(decode(input))
    }
  })

/** The API's endpoints by `METHOD /path/{param}`, as the document names them. */
const endpoints = (() => {
  const byKey = new Map<string, { payload: Option.Option<unknown>; endpoint: any }>()
  HttpApi.reflect(Api, {
    onGroup: () => {},
    onEndpoint: ({ endpoint }) => {
      const template = endpoint.path.replace(/:(\w+)/g, "{$1}")
      byKey.set(`${endpoint.method} ${template}`, { payload: endpoint.payloadSchema, endpoint })
    }
  })
  return byKey
})()

const resolve = (document: any, schema: any): any =>
  schema?.$ref ? resolve(document, document.components.schemas[schema.$ref.split("/").pop()]) : schema

/** Every operation of the document, joined with the endpoint that serves it. */
const operationsOf = (document: any): ReadonlyArray<Operation> =>
  Object.entries<Record<string, any>>(document.paths).flatMap(([template, item]) =>
    Object.entries<any>(item).map(([method, operation]): Operation => {
      const key = `${method.toUpperCase()} ${template}`
      const served = endpoints.get(key)
      if (served === undefined) throw new Error(`the document lists ${key}, which no endpoint of the API serves`)
      const { endpoint } = served
      const parameters: ReadonlyArray<any> = operation.parameters ?? []
      const named = (where: string) => parameters.filter((p) => p.in === where).map((p) => p.name as string)
      const security: ReadonlyArray<Record<string, unknown>> = operation.security ?? []
      const content = operation.requestBody?.content?.["application/json"]?.schema
      const bodySchema = content === undefined
        ? undefined
        : resolve(document, content.anyOf ? content.anyOf.find((branch: any) => branch.type !== "null") : content)
      return {
        // A counterexample names the operation, not the whole record.
        [fc.toStringMethod]: () => key,
        method: method.toUpperCase(),
        template,
        pathParams: named("path"),
        idParams: named("path").filter((name) => name in validPathValues),
        formMediaTypes: Object.keys(operation.requestBody?.content ?? {}).filter((type) => type !== "application/json"),
        queryParams: named("query"),
        headerParams: named("header"),
        secured: security.length > 0,
        acceptsAccessToken: security.some((scheme) => "accessToken" in scheme),
        statuses: new Set(Object.keys(operation.responses).map(Number)),
        body: Option.map(served.payload, (payload) => {
          // Valid bodies come from the payload's own type, encoded as a client sends them.
          const type = Schema.typeSchema(payload as AnySchema)
          const encode = Schema.encodeSync(payload as AnySchema)
          return {
            properties: Object.keys(bodySchema?.properties ?? {}),
            valid: Arbitrary.make(type).map((value) => encode(value))
          }
        }),
        decodes: {
          path: decoder(endpoint.pathSchema),
          query: decoder(endpoint.urlParamsSchema),
          headers: decoder(endpoint.headersSchema),
          body: decoder(served.payload)
        }
      }
    })
  )

// ---------------------------------------------------------------------------
// What is generated

/** Path values of existing rows, so that a request is wrong only where it is meant to be. */
const validPathValues: Record<string, string> = { productId: "1", userId: "1", restockRound: "1" }

const pathOf = (operation: Operation, values: Record<string, string>) =>
  operation.template.replace(/\{(\w+)\}/g, (_, name: string) => values[name] ?? validPathValues[name] ?? "1")

/** Things that look like ids and are not, and things that do not look like ids at all. */
const notAnId = fc.oneof(
  fc.constantFrom(
    "0", "-1", "+1", "01", "1.5", "1e3", "0x10", " 1", "1 ", "9007199254740992", "99999999999999999999",
    "1".repeat(120), "1".repeat(3000), "NaN", "Infinity", "null", "true", "[]", "{}", "%", "%00", "1/2", "1;x",
    "１", "1\u0000", "__proto__", "constructor"
  ),
  fc.string({ minLength: 1, maxLength: 40 }),
  fc.fullUnicodeString({ minLength: 1, maxLength: 12 }),
  fc.bigInt({ min: 2n ** 53n, max: 2n ** 80n }).map(String),
  fc.integer({ min: -1_000_000, max: 0 }).map(String),
  fc.double({ noNaN: true }).map(String)
).filter((value) => value !== "." && value !== "..") // a client would resolve those away

/** A JSON value that a field could be sent with, as JSON text (numbers kept as written). */
const anyJsonValue: fc.Arbitrary<string> = fc.oneof(
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
  fc.constantFrom(
    "1e400", "-1e400", "-0", "1.0", "0.5", "2147483647", "2147483648", "-2147483649", "9007199254740993",
    "1e-400", "123456789012345678901234567890", "0", "-1", "true", "false", "null", "[]", "{}", "\"\"", "\"1\"",
    JSON.stringify("x".repeat(256)), JSON.stringify("x".repeat(5000)), "{\"__proto__\":{\"admin\":true}}"
  ),
  fc.string({ maxLength: 60 }).map((s) => JSON.stringify(s)),
  fc.fullUnicodeString({ maxLength: 20 }).map((s) => JSON.stringify(s)),
  fc.array(fc.integer(), { maxLength: 3 }).map((a) => JSON.stringify(a)),
  fc.integer({ min: 33, max: 200 }).map((depth) => "[".repeat(depth) + "]".repeat(depth))
)

const extraKey = fc.oneof(
  fc.constantFrom("__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "", "_tag"),
  fc.string({ maxLength: 20 })
)

/** An object with the body's own fields (some missing, some wrong) and extra ones. */
const objectBody = (properties: ReadonlyArray<string>) =>
  fc.tuple(
    fc.subarray([...properties]),
    fc.array(fc.tuple(extraKey, anyJsonValue), { maxLength: 3 })
  ).chain(([own, extra]) =>
    fc.tuple(...own.map(() => anyJsonValue)).map((values) => {
      const fields = [...own.map((key, i) => [key, values[i]!] as const), ...extra]
      return `{${fields.map(([key, value]) => `${JSON.stringify(key)}:${value}`).join(",")}}`
    })
  )

/** Text that is not JSON at all. */
const notJson = fc.oneof(
  fc.constantFrom("{", "{\"stock\": 3", "{'stock': 3}", "{\"stock\": 3,}", "NaN", "undefined", "{stock: 3}", "\u0000", "[1,]"),
  fc.string({ minLength: 1, maxLength: 40 }).filter((text) => {
    try {
      JSON.parse(text)
      return false
    } catch {
      return true
    }
  })
)

/** Nesting past any bound a body may have, around a field or alone; some of it past 64 KiB. */
const deepJson = (properties: ReadonlyArray<string>) =>
  fc.tuple(
    fc.integer({ min: 33, max: 40_000 }),
    fc.boolean(),
    fc.constantFrom(undefined, ...properties)
  ).map(([depth, arrays, field]) => {
    const nested = arrays ? "[".repeat(depth) + "]".repeat(depth) : "{\"a\":".repeat(depth) + "1" + "}".repeat(depth)
    return field === undefined ? nested : `{${JSON.stringify(field)}:${nested}}`
  })

/** A long string in a field: around the 64 KiB limit, either side of it. */
const longJson = (properties: ReadonlyArray<string>) =>
  fc.tuple(fc.integer({ min: 60_000, max: 70_000 }), fc.constantFrom("name", ...properties)).map(([length, field]) =>
    JSON.stringify({ [field]: "x".repeat(length) })
  )

const mediaTypes = fc.constantFrom(
  "application/vnd.api+json", "application/merge-patch+json", "application/json-patch+json", "text/json",
  "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml",
  "application/octet-stream", "application/jsonx", "json", "*/*"
)

// ---------------------------------------------------------------------------
// Credentials

const key = new TextEncoder().encode(jwtSecret)
const nowSeconds = () => Math.floor(Date.now() / 1000)
const sign = (claims: { sub?: string; exp?: number }, secret: Uint8Array = key) => {
  let token = new SignJWT({}).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt(nowSeconds() - 10)
  if (claims.sub !== undefined) token = token.setSubject(claims.sub)
  if (claims.exp !== undefined) token = token.setExpirationTime(claims.exp)
  return token.sign(secret)
}
const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

interface Credential {
  readonly what: string
  readonly headers: Record<string, string>
  readonly query?: string
  readonly status: 401 | 403
}

const credentials = async (): Promise<ReadonlyArray<Credential>> => {
  const inAnHour = nowSeconds() + 3600
  const forged = await sign({ sub: "1", exp: inAnHour }, new TextEncoder().encode("another secret"))
  const expired = await sign({ sub: "1", exp: nowSeconds() - 5 })
  const noSubject = await sign({ exp: inAnHour })
  const badSubject = await sign({ sub: "1.5", exp: inAnHour })
  const otherUser = await sign({ sub: "2", exp: inAnHour })
  const unsigned = `${base64url({ alg: "none", typ: "JWT" })}.${base64url({ sub: "1", exp: inAnHour })}.`
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
  return [
    { what: "no credential", headers: {}, status: 401 },
    { what: "an empty bearer", headers: { authorization: "Bearer " }, status: 401 },
    { what: "another scheme", headers: { authorization: `Basic ${Buffer.from(`admin:${adminToken}`).toString("base64")}` }, status: 401 },
    { what: "the admin token with a suffix", headers: bearer(`${adminToken}x`), status: 401 },
    { what: "the admin token cut short", headers: bearer(adminToken.slice(0, -1)), status: 401 },
    { what: "garbage", headers: bearer("not.a.token"), status: 401 },
    { what: "a forged token", headers: bearer(forged), status: 401 },
    { what: "an expired token", headers: bearer(expired), status: 401 },
    { what: "a token without a subject", headers: bearer(noSubject), status: 401 },
    { what: "a token whose subject is no id", headers: bearer(badSubject), status: 401 },
    { what: "an unsigned token", headers: bearer(unsigned), status: 401 },
    { what: "a garbage ?access_token=", headers: {}, query: "access_token=garbage", status: 401 },
    { what: "a forged ?access_token=", headers: {}, query: `access_token=${forged}`, status: 401 },
    // Valid, but not for this: user 2 on an admin endpoint or acting for user 1.
    { what: "another user's token", headers: bearer(otherUser), status: 403 }
  ]
}

// ---------------------------------------------------------------------------
// Sending one, checking the answer

interface Sent {
  readonly operation: Operation
  readonly method: string
  readonly path: string
  readonly query?: string | undefined
  readonly headers?: Record<string, string> | undefined
  readonly body?: string | undefined
  /** The one right answer. */
  readonly status: number
  readonly tag?: string | undefined
  /** The router's "no route": not an operation's answer, so not in its document. */
  readonly noRoute?: boolean
}

const send = (baseUrl: string) => async (sent: Sent) => {
  const headers: Record<string, string> = { ...sent.headers }
  if (sent.body !== undefined && headers["content-type"] === undefined) headers["content-type"] = "application/json"
  const url = `${baseUrl}${sent.path}${sent.query ? `?${sent.query}` : ""}`
  const response = await fetch(url, { method: sent.method, headers, body: sent.body })
  const text = await response.text()
  const label = `${sent.method} ${url.slice(baseUrl.length, baseUrl.length + 200)} ` +
    `${JSON.stringify(sent.headers ?? {}).slice(0, 200)} ${(sent.body ?? "").slice(0, 200)}`
  expect(response.status, `${label} answered ${text.slice(0, 300)}`).toBeLessThan(500)
  expect(response.status, `${label} answered ${text.slice(0, 300)}`).toBe(sent.status)
  if (!sent.noRoute) expect(sent.operation.statuses.has(response.status), `${label}: ${response.status} is not in the document`).toBe(true)
  expect(response.headers.get("content-type"), label).toMatch(/^application\/json/)
  const error = JSON.parse(text)
  expect(typeof error._tag, label).toBe("string")
  expect(typeof error.message, label).toBe("string")
  if (sent.tag !== undefined) expect(error._tag, label).toBe(sent.tag)
}

const adminHeaders = { authorization: `Bearer ${adminToken}` }

/** A valid body for the operation, or none where it takes none or may go without. */
const validBodyOf = (operation: Operation): fc.Arbitrary<string | undefined> =>
  Option.match(operation.body, {
    onNone: () => fc.constant(undefined),
    onSome: ({ valid }) => valid.map((value) => value === null ? undefined : JSON.stringify(value))
  })

const runs = { path: 500, query: 150, headers: 60, body: 700, mediaType: 150, method: 100, credential: 400 }

describe.each(["embedded", "mysql-redis"] as const)("the edge, fuzzed from its own OpenAPI document, on %s", (backing) => {
  it.live("every malformed request is refused as §4 says, and nothing changes", () =>
    Effect.gen(function*() {
      const server = yield* TestServer
      console.log(`fuzz seed ${seed} (replay: FUZZ_SEED=${seed})`)

      // What the requests must leave alone: a product with subscribers and a finished round.
      yield* request("PUT", "/admin/products/1", { ...asAdmin, body: { name: "Kettle", stock: 0 } })
      yield* request("PUT", "/admin/products/2", { ...asAdmin, body: { name: "Teapot", stock: 3 } })
      for (const userId of [1, 2]) {
        const minted = yield* request("POST", `/admin/users/${userId}/token`, asAdmin)
        yield* request("PUT", `/products/1/subscriptions/${userId}`, { token: minted.body.token })
      }
      const restock = yield* request("POST", "/products/1/notifications/re-stock", { ...asAdmin, body: { stock: 5 } })
      expect(restock.status).toBe(202)
      yield* Effect.iterate(undefined as string | undefined, {
        while: (status) => status !== "COMPLETED",
        body: () =>
          Effect.map(
            Effect.zipRight(Effect.sleep("20 millis"), request("GET", "/products/1/notifications/1", asAdmin)),
            (reply) => reply.body.status as string
          )
      })

      const document = (yield* request("GET", "/openapi.json")).body as OpenApi.OpenAPISpec
      const operations = operationsOf(document)
      expect(operations.length).toBeGreaterThanOrEqual(17)
      const before = yield* databaseSnapshot
      const stockBefore = yield* (yield* StockCache).get(ProductId.make(1))
      const post = send(server.baseUrl)
      const options = { seed, numRuns: 0, endOnFailure: true }
      let sent = 0
      const check = (sentRequest: Sent) => {
        sent++
        return post(sentRequest)
      }
      const property = <A>(numRuns: number, arbitrary: fc.Arbitrary<A>, run: (a: A) => Promise<void>) =>
        Effect.promise(() => fc.assert(fc.asyncProperty(arbitrary, run), { ...options, numRuns }))

      const withPath = operations.filter((o) => o.idParams.length > 0)
      const withQuery = operations.filter((o) => o.queryParams.length > 0)
      const withHeaders = operations.filter((o) => o.headerParams.length > 0)
      const withBody = operations.filter((o) => Option.isSome(o.body))
      const secured = operations.filter((o) => o.secured)

      // A path id that is not one, or a ';' that would cut the path short: 400.
      yield* property(
        runs.path,
        fc.constantFrom(...withPath).chain((operation) =>
          fc.record({
            operation: fc.constant(operation),
            param: fc.constantFrom(...operation.idParams),
            value: notAnId,
            raw: fc.constantFrom(false, false, false, true)
          }).filter(({ operation, param, value }) =>
            !operation.decodes.path({ ...validPathValues, [param]: value })
          ).chain((generated) => fc.record({ generated: fc.constant(generated), body: validBodyOf(operation) }))
        ),
        ({ generated: { operation, param, value, raw }, body }) =>
          check({
            operation,
            method: operation.method,
            // Raw: the value as typed, with a `;` to cut what follows; else as a client encodes it.
            path: pathOf(operation, { [param]: raw ? `1;${encodeURIComponent(value)}` : encodeURIComponent(value) }),
            headers: adminHeaders,
            body,
            status: 400,
            tag: "BadRequest"
          })
      )

      // A query parameter out of its range, of the wrong kind, or given twice: 400.
      yield* property(
        runs.query,
        fc.constantFrom(...withQuery).chain((operation) =>
          fc.record({
            operation: fc.constant(operation),
            param: fc.constantFrom(...operation.queryParams),
            values: fc.array(fc.oneof(notAnId, fc.constantFrom("1001", "0", "", "1")), { minLength: 1, maxLength: 2 })
          }).filter(({ operation, param, values }) =>
            !operation.decodes.query({ [param]: values.length === 1 ? values[0] : values })
          )
        ),
        ({ operation, param, values }) =>
          check({
            operation,
            method: operation.method,
            path: pathOf(operation, {}),
            query: values.map((value) => `${param}=${encodeURIComponent(value)}`).join("&"),
            headers: adminHeaders,
            status: 400,
            tag: "BadRequest"
          })
      )

      // A header parameter (`Last-Event-ID`) that is not what it should be: 400.
      if (withHeaders.length > 0) {
        yield* property(
          runs.headers,
          fc.constantFrom(...withHeaders).chain((operation) =>
            fc.record({
              operation: fc.constant(operation),
              param: fc.constantFrom(...operation.headerParams),
              value: fc.oneof(notAnId, fc.constantFrom("0", "-5")).filter((value) => /^[\x21-\x7e]+$/.test(value))
            }).filter(({ operation, param, value }) => !operation.decodes.headers({ [param]: value }))
          ),
          ({ operation, param, value }) =>
            check({
              operation,
              method: operation.method,
              path: pathOf(operation, {}),
              headers: { ...adminHeaders, [param]: value },
              status: 400,
              tag: "BadRequest"
            })
        )
      }

      // A JSON body its schema refuses, text that is not JSON, nesting past the bound,
      // or more than 64 KiB: 400, or 413 for the last.
      yield* property(
        runs.body,
        fc.constantFrom(...withBody).chain((operation) => {
          const properties = Option.getOrThrow(operation.body).properties
          return fc.record({
            operation: fc.constant(operation),
            body: fc.oneof(
              { arbitrary: objectBody(properties), weight: 6 },
              { arbitrary: anyJsonValue, weight: 2 },
              { arbitrary: notJson, weight: 1 },
              { arbitrary: deepJson(properties), weight: 1 },
              { arbitrary: longJson(properties), weight: 1 }
            )
          }).filter(({ body, operation }) => {
            let json: unknown
            try {
              json = JSON.parse(body)
            } catch {
              return true // not JSON at all: wrong by construction
            }
            return !operation.decodes.body(json) || Buffer.byteLength(body) > 64 * 1024
          })
        }),
        ({ operation, body }) => {
          const tooLarge = Buffer.byteLength(body) > 64 * 1024
          return check({
            operation,
            method: operation.method,
            path: pathOf(operation, {}),
            headers: adminHeaders,
            body,
            status: tooLarge ? 413 : 400,
            tag: tooLarge ? "PayloadTooLarge" : "BadRequest"
          })
        }
      )

      // A valid body under another media type than application/json (or a form the operation
      // takes), or that type with no body: 415.
      yield* property(
        runs.mediaType,
        fc.constantFrom(...operations.filter((o) => o.method !== "GET")).chain((operation) =>
          fc.record({
            operation: fc.constant(operation),
            body: validBodyOf(operation),
            contentType: mediaTypes.filter((type) => !operation.formMediaTypes.includes(type.split(";")[0]!))
          })
        ),
        ({ operation, body, contentType }) =>
          check({
            operation,
            method: operation.method,
            path: pathOf(operation, {}),
            headers: { ...adminHeaders, "content-type": contentType },
            body: body ?? "",
            status: 415,
            tag: "UnsupportedMediaType"
          })
      )

      // A method no route serves on the path: the router's JSON 404. (Some paths are
      // another route's with that method: `GET …/notifications/re-stock` is a round
      // named "re-stock", a 400; those are left to the path ids above.)
      const served = (method: string, path: string) =>
        operations.some((o) =>
          o.method === method && new RegExp(`^${o.template.replace(/\{\w+\}/g, "[^/]+")}$`).test(path)
        )
      yield* property(
        runs.method,
        fc.tuple(fc.constantFrom(...operations), fc.constantFrom("GET", "PUT", "POST", "DELETE", "PATCH")).filter(
          ([operation, method]) => !served(method, pathOf(operation, {}))
        ),
        ([operation, method]) =>
          check({
            operation,
            method,
            path: pathOf(operation, {}),
            headers: adminHeaders,
            body: method === "GET" ? undefined : "{}",
            status: 404,
            tag: "NotFound",
            noRoute: true
          })
      )

      // An otherwise valid request with a credential that is missing, bad, or not allowed to act: 401 or 403.
      const bad = yield* Effect.promise(credentials)
      yield* property(
        runs.credential,
        fc.constantFrom(...secured).chain((operation) =>
          fc.record({
            operation: fc.constant(operation),
            credential: fc.constantFrom(...bad),
            body: validBodyOf(operation)
          })
        ),
        ({ operation, credential, body }) =>
          check({
            operation,
            method: operation.method,
            path: pathOf(operation, {}),
            query: credential.query,
            headers: credential.headers,
            body,
            status: credential.status
          })
      )

      console.log(`fuzz: ${sent} malformed requests over ${operations.length} operations`)
      expect(sent).toBeGreaterThan(1_500)

      // Nothing changed, and the service still answers.
      expect(yield* databaseSnapshot).toEqual(before)
      expect(yield* (yield* StockCache).get(ProductId.make(1))).toBe(stockBefore)
      expect((yield* request("GET", "/health/ready")).status).toBe(200)
      expect((yield* request("GET", "/products/2")).body).toMatchObject({ id: 2, name: "Teapot", stock: 3 })
    }).pipe(Effect.provide(layerServer({ backing }))), 120_000)
})
