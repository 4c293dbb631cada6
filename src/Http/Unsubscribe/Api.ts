import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Schema from "effect/Schema"
import { InvalidUnsubscribeToken, ProductNotFound } from "../../Domain/Errors.js"
import { ProductId, UserId } from "../../Domain/Ids.js"

/**
 * Any text at all: a token that is not one of ours is still the handler's to
 * refuse, with `InvalidUnsubscribeToken`, not the schema's (a `BadRequest`).
 */
const tokenParam = HttpApiSchema.param(
  "token",
  Schema.String.annotations({ description: "the token of an unsubscribe link, as the link has it" })
)

/** `POST /unsubscribe/{token}` answers this (as JSON) once the user is unsubscribed. */
export class Unsubscribed extends Schema.Class<Unsubscribed>("Unsubscribed")({
  productId: ProductId,
  userId: UserId,
  active: Schema.Literal(false)
}) {}

/**
 * The body of RFC 8058's one-click POST, `List-Unsubscribe=One-Click`. An
 * empty form is the same as no body. The field, when present, must say
 * `One-Click`.
 */
const OneClickFields = Schema.Struct({
  "List-Unsubscribe": Schema.optional(
    Schema.Literal("One-Click").annotations({
      message: () => ({ message: "expected List-Unsubscribe=One-Click (RFC 8058)", override: true })
    })
  )
}).annotations({ description: "RFC 8058 one-click unsubscribe: `List-Unsubscribe=One-Click`" })

/**
 * What the POST takes: no body (which reaches the decoder as `null`), or the
 * one-click form, URL-encoded as mail clients send it or as multipart.
 */
export const OneClick = Schema.Union(
  Schema.Null,
  OneClickFields.pipe(HttpApiSchema.withEncoding({ kind: "UrlParams" })),
  HttpApiSchema.Multipart(OneClickFields)
)

const htmlPage = (description: string) => HttpApiSchema.Text({ contentType: "text/html" }).annotations({ description })

/**
 * The generator shows one content type per status, and a body of `null` as
 * a JSON body. In the document, the POST takes no body or a form, and
 * answers HTML to a browser.
 */
const describeOneClick = (operation: Record<string, any>): Record<string, any> => {
  const requestBody = operation.requestBody
  if (requestBody?.content !== undefined) {
    delete requestBody.content["application/json"]
    requestBody.required = false
  }
  const ok = operation.responses?.["200"]
  if (ok?.content !== undefined) {
    ok.content["text/html"] = { schema: { type: "string", description: "a confirmation page, to a browser's form" } }
  }
  return operation
}

/**
 * One-click unsubscribe links (SPEC §3.13): the token is the only credential.
 * The GET never changes anything, because mail scanners and link previews
 * fetch links. It answers a page whose button makes the POST.
 */
export class UnsubscribeApi extends HttpApiGroup.make("unsubscribe")
  .add(
    HttpApiEndpoint.get("unsubscribePage")`/unsubscribe/${tokenParam}`
      .addSuccess(htmlPage("A small page naming the product, with a button that POSTs to the same URL"))
      .addError(InvalidUnsubscribeToken)
      .addError(ProductNotFound)
      .annotate(OpenApi.Summary, "The page of an unsubscribe link (changes nothing)")
  )
  .add(
    HttpApiEndpoint.post("unsubscribeByLink")`/unsubscribe/${tokenParam}`
      .setPayload(OneClick)
      .addSuccess(Unsubscribed)
      .addError(InvalidUnsubscribeToken)
      .addError(ProductNotFound)
      .annotate(OpenApi.Summary, "One-click unsubscribe (RFC 8058; idempotent)")
      .annotate(
        OpenApi.Description,
        "Unsubscribes the link's user from its product. The body is `List-Unsubscribe=One-Click` as mail clients " +
          "send it (URL-encoded or multipart), or none. The answer is JSON, or a small HTML confirmation page when " +
          "the request's `Accept` prefers `text/html` to `application/json` (a browser submitting the link's page)."
      )
      .annotate(OpenApi.Transform, describeOneClick)
  )
  .annotate(OpenApi.Title, "Unsubscribe")
{}
