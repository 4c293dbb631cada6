/**
 * A request body, read once at the edge before any handler sees it: bounded
 * in bytes, in nesting depth, and parsed as JSON; or, for the endpoints that
 * declare a form payload, bounded in bytes and parsed as a form.
 *
 * Why not the platform's own reader: on a body over its `MaxBodySize` it
 * destroys the request stream, which resets the connection before any answer
 * is written (a chunked upload over the limit got no 413, only a reset); and
 * JSON nested thousands of levels deep parsed fine but overflowed the stack
 * later, while the schema's decode error was being formatted (a 500). Here
 * the rest of an oversized body is drained, not destroyed, so the client reads
 * its 413; and depth is bounded before the body is parsed.
 */
import * as HttpServerError from "@effect/platform/HttpServerError"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as Multipart from "@effect/platform/Multipart"
import * as UrlParams from "@effect/platform/UrlParams"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"

/** Request bodies are small JSON documents; 64 KiB is far beyond any of them. */
export const maxBodyBytes = 64 * 1024

/** The deepest nesting a body may have: every body of the API is one flat object. */
export const maxBodyDepth = 32

/**
 * What is read past the limit before the connection is cut after all: the
 * client that sent a little too much reads its 413, one that streams without
 * end does not keep the socket busy.
 */
const maxDrainBytes = 1024 * 1024

/** How a body fails to be read as JSON; each becomes one answer of the edge. */
export type BodyProblem =
  | { readonly _tag: "TooLarge" }
  | { readonly _tag: "TooDeep" }
  | { readonly _tag: "NotJson"; readonly reason: string }

export type ReadBody =
  | { readonly _tag: "Read"; readonly text: string; readonly json: unknown }
  | BodyProblem

/** Whether a request carries a body at all (a declared length, or chunks). */
export const hasBody = (request: HttpServerRequest.HttpServerRequest): boolean =>
  Number(request.headers["content-length"] ?? "0") > 0 || request.headers["transfer-encoding"] !== undefined

/**
 * The deepest nesting of arrays and objects in a JSON text, counted outside
 * strings, stopping as soon as it passes `limit`. It does not validate: a
 * malformed text is `JSON.parse`'s to refuse.
 */
export const nestingExceeds = (text: string, limit: number): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (inString) {
      if (code === 92 /* \ */) i++
      else if (code === 34 /* " */) inString = false
    } else if (code === 34) {
      inString = true
    } else if (code === 91 /* [ */ || code === 123 /* { */) {
      if (++depth > limit) return true
    } else if (code === 93 /* ] */ || code === 125 /* } */) {
      depth--
    }
  }
  return false
}

/** The raw bytes of the body, or `TooLarge` once they pass `maxBodyBytes`. */
const readBytes = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.async<Buffer | "TooLarge", HttpServerError.RequestError>((resume) => {
    const source = NodeHttpServerRequest.toIncomingMessage(request)
    const chunks: Array<Buffer> = []
    let bytes = 0
    let tooLarge = false
    const onData = (chunk: Buffer) => {
      bytes += chunk.length
      if (tooLarge) {
        // Reading (and dropping) the rest lets the client read its answer
        // before the connection closes; past the drain bound, it is cut.
        if (bytes > maxBodyBytes + maxDrainBytes) source.destroy()
      } else if (bytes > maxBodyBytes) {
        tooLarge = true
        chunks.length = 0
        resume(Effect.succeed("TooLarge"))
      } else {
        chunks.push(chunk)
      }
    }
    const onEnd = () => {
      detach()
      if (!tooLarge) resume(Effect.succeed(Buffer.concat(chunks, bytes)))
    }
    const onError = (cause: unknown) => {
      detach()
      if (!tooLarge) resume(Effect.fail(new HttpServerError.RequestError({ request, reason: "Decode", cause })))
    }
    const detach = () => {
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onError)
    }
    source.on("data", onData)
    source.on("end", onEnd)
    source.on("error", onError)
    return Effect.sync(detach)
  })

/** Reads the body of a request that has one, as JSON within the edge's bounds. */
export const readJsonBody = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.map(readBytes(request), (bytes): ReadBody => {
    if (bytes === "TooLarge") return { _tag: "TooLarge" }
    const text = bytes.toString("utf8")
    if (nestingExceeds(text, maxBodyDepth)) return { _tag: "TooDeep" }
    try {
      return { _tag: "Read", text, json: text === "" ? null : JSON.parse(text) }
    } catch (cause) {
      return { _tag: "NotJson", reason: cause instanceof Error ? cause.message : String(cause) }
    }
  })

/**
 * The request as handlers see it once its body was read here: the body's
 * getters answer what was read (the platform's would wait on a stream that
 * is already drained); everything else is the original request's.
 */
export const withReadBody = (
  request: HttpServerRequest.HttpServerRequest,
  body: { readonly text: string; readonly json: unknown }
): HttpServerRequest.HttpServerRequest => {
  const bytes = new TextEncoder().encode(body.text)
  return Object.create(request, {
    text: { value: Effect.succeed(body.text) },
    json: { value: Effect.succeed(body.json) },
    arrayBuffer: { value: Effect.succeed(bytes.buffer) },
    stream: { value: Stream.succeed(bytes) }
  })
}

/** The form media types an endpoint may take (a one-click unsubscribe, RFC 8058, sends either). */
export const formMediaTypes = ["application/x-www-form-urlencoded", "multipart/form-data"] as const
export type FormMediaType = typeof formMediaTypes[number]

/** A form's fields; a name given more than once has every value, in order. */
export type FormFields = Record<string, string | Array<string>>

export type ReadForm =
  | { readonly _tag: "Read"; readonly text: string; readonly fields: FormFields }
  | { readonly _tag: "TooLarge" }
  | { readonly _tag: "NotForm"; readonly reason: string }

const addField = (fields: FormFields, name: string, value: string) => {
  const previous = fields[name]
  fields[name] = previous === undefined ? value : Array.isArray(previous) ? [...previous, value] : [previous, value]
}

/**
 * The fields of a form body. Multipart is parsed by the platform's own
 * `Response.formData()`, not by hand. A file field is refused: no form of
 * the API takes one.
 */
const parseForm = async (bytes: Buffer, mediaType: FormMediaType, contentType: string): Promise<ReadForm> => {
  const text = bytes.toString("utf8")
  const fields: FormFields = {}
  if (bytes.length === 0) return { _tag: "Read", text, fields }
  if (mediaType === "application/x-www-form-urlencoded") {
    for (const [name, value] of new URLSearchParams(text)) addField(fields, name, value)
    return { _tag: "Read", text, fields }
  }
  let form: FormData
  try {
    form = await new Response(new Uint8Array(bytes), { headers: { "content-type": contentType } }).formData()
  } catch {
    return { _tag: "NotForm", reason: "the multipart body is malformed (or its boundary is missing)" }
  }
  let file: string | undefined
  form.forEach((value, name) => {
    if (typeof value === "string") addField(fields, name, value)
    else file ??= name
  })
  return file === undefined
    ? { _tag: "Read", text, fields }
    : { _tag: "NotForm", reason: `the field ${JSON.stringify(file)} is a file` }
}

/** Reads the body of a request as a form of `mediaType`, within the edge's bound on bytes. */
export const readFormBody = (request: HttpServerRequest.HttpServerRequest, mediaType: FormMediaType) =>
  Effect.flatMap(readBytes(request), (bytes): Effect.Effect<ReadForm> =>
    bytes === "TooLarge"
      ? Effect.succeed({ _tag: "TooLarge" })
      : Effect.promise(() => parseForm(bytes, mediaType, request.headers["content-type"] ?? mediaType)))

/**
 * The request as handlers see it once its form was read here: the platform
 * decodes a form payload from `urlParamsBody` or `multipart`, which answer
 * the fields read (a multipart's fields are all text, as `parseForm` made
 * sure).
 */
export const withReadForm = (
  request: HttpServerRequest.HttpServerRequest,
  form: { readonly text: string; readonly fields: FormFields }
): HttpServerRequest.HttpServerRequest => {
  const read = withReadBody(request, { text: form.text, json: null })
  return Object.create(read, {
    urlParamsBody: { value: Effect.succeed(UrlParams.fromInput(form.fields)) },
    multipart: { value: Effect.succeed(form.fields as Multipart.Persisted) }
  })
}
