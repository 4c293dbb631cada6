/**
 * A request body, read once at the edge before any handler sees it: bounded
 * in bytes, in nesting depth, and parsed as JSON.
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
