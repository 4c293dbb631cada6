import { describe, expect, it } from "vitest"
import { redactCredentials as redactedUrl } from "../../src/Observability/Redact.js"

describe("the access log", () => {
  it("never writes a token passed as ?access_token=", () => {
    expect(redactedUrl("/users/1/notifications/stream?access_token=eyJhbGciOi.x.y")).toBe(
      "/users/1/notifications/stream?access_token=REDACTED"
    )
    expect(redactedUrl("/admin/products/1/notifications/stream?lastEventId=4&access_token=s3cret&x=1")).toBe(
      "/admin/products/1/notifications/stream?lastEventId=4&access_token=REDACTED&x=1"
    )
    expect(redactedUrl("/products/1")).toBe("/products/1")
  })
})
