/**
 * Node listens before the API's handler is attached: a request in that gap
 * is answered 503 (it used to hang), and once the handler is there the
 * stand-in stays silent.
 */
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { afterEach, expect, it } from "vitest"
import { answerWhileNoHandler } from "../../src/Http/Server.js"

let server: Server | undefined

afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())))

const listening = async (): Promise<string> => {
  const created = createServer()
  created.on("request", answerWhileNoHandler(created))
  server = created
  await new Promise<void>((resolve) => created.listen(0, "127.0.0.1", resolve))
  return `http://127.0.0.1:${(created.address() as AddressInfo).port}`
}

it("a request before the handler is attached gets 503 ServiceUnavailable with Retry-After", async () => {
  const url = await listening()
  const response = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(2_000) })
  expect(response.status).toBe(503)
  expect(response.headers.get("retry-after")).toBe("1")
  expect(await response.json()).toEqual({ _tag: "ServiceUnavailable", message: "the service is starting or stopping" })
})

it("once the handler is attached, only the handler answers", async () => {
  const url = await listening()
  server!.on("request", (_request, response) => response.end("handled"))
  const response = await fetch(`${url}/anything`, { signal: AbortSignal.timeout(2_000) })
  expect(response.status).toBe(200)
  expect(await response.text()).toBe("handled")
})
