/**
 * The two small HTML pages of an unsubscribe link: the one a GET answers,
 * which asks, and the one a browser's POST answers, which confirms. They
 * are plain HTML: no script, one inline style allowed by its hash, a form
 * that works without JavaScript.
 */
import { createHash } from "node:crypto"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"

/** Text as HTML text or attribute value: a product is named by the shop, not by us. */
export const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (char) =>
    char === "&" ? "&amp;" : char === "<" ? "&lt;" : char === ">" ? "&gt;" : char === "\"" ? "&quot;" : "&#39;")

const style =
  "body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}" +
  "button{font:inherit;padding:.5rem 1.25rem;cursor:pointer}"

const styleHash = createHash("sha256").update(style, "utf8").digest("base64")

const headers = {
  // Each page names one user's subscription: never kept by a shared cache.
  "cache-control": "no-store",
  // Nothing runs and nothing loads. The form may post only back here, and the page may not be
  // framed, so another site cannot dress the button up as something else.
  "content-security-policy":
    `default-src 'none'; style-src 'sha256-${styleHash}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'`,
  // The URL is the credential: it must not leave in a Referer.
  "referrer-policy": "no-referrer",
  "x-content-type-options": "nosniff",
  "x-robots-tag": "noindex"
} as const

const page = (title: string, body: string): string =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}</title>
<style>${style}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`

/**
 * What a GET of the link answers: the product, and a button. The form has no
 * `action`, so it posts to the page's own URL, behind whatever path prefix
 * `PUBLIC_URL` has. It sends what RFC 8058 mail clients send.
 */
export const askPage = (productName: string): string =>
  page(
    "Unsubscribe",
    `<h1>Unsubscribe?</h1>
<p>You will no longer be notified when <strong>${escapeHtml(productName)}</strong> is back in stock.</p>
<form method="post">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button>
</form>`
  )

/** What a browser's POST answers. */
export const donePage = (productName: string): string =>
  page(
    "Unsubscribed",
    `<h1>Unsubscribed</h1>
<p>You will no longer be notified when <strong>${escapeHtml(productName)}</strong> is back in stock.</p>`
  )

export const htmlResponse = (html: string): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(html, { contentType: "text/html; charset=utf-8", headers })

/** How much a client wants `mediaType`, by the most specific range of `Accept` that covers it (RFC 9110 §12.5.1). */
const qualityOf = (accept: ReadonlyArray<{ readonly range: string; readonly q: number }>, mediaType: string) => {
  const [type] = mediaType.split("/")
  let best: { readonly specificity: number; readonly q: number } | undefined
  for (const { q, range } of accept) {
    const specificity = range === mediaType ? 2 : range === `${type}/*` ? 1 : range === "*/*" ? 0 : -1
    if (specificity >= 0 && (best === undefined || specificity > best.specificity)) best = { specificity, q }
  }
  return best?.q ?? 0
}

/**
 * Whether to answer HTML rather than the JSON of the contract. Only when
 * `Accept` prefers `text/html` to `application/json` outright, as a browser
 * submitting a form does (`text/html,...,*\/*;q=0.8`). A mail client's POST,
 * curl and API clients (no `Accept`, `*\/*`, JSON) get JSON.
 */
export const prefersHtml = (acceptHeader: string | undefined): boolean => {
  if (acceptHeader === undefined) return false
  const accept = acceptHeader.split(",").map((part) => {
    const [range, ...parameters] = part.split(";").map((piece) => piece.trim().toLowerCase())
    const q = parameters.find((parameter) => parameter.startsWith("q="))
    const quality = q === undefined ? 1 : Number(q.slice(2))
    return { range: range!, q: Number.isFinite(quality) ? quality : 0 }
  })
  return qualityOf(accept, "text/html") > qualityOf(accept, "application/json")
}
