/**
 * Credentials in a query string (`?access_token=`: browsers' EventSource
 * cannot set headers, so the admin token and user JWTs travel there) never
 * leave the process: not in a log line, not in a span. Matched wherever it
 * stands, not only after `?` or `&`: a span's `url.query` holds the query
 * without them.
 */
export const redactCredentials = (value: string): string =>
  value.replace(/(access_token=)[^&#\s]*/gi, "$1REDACTED")
