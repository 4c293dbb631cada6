/**
 * The errors only the HTTP edge answers with. Like the domain errors, each
 * carries its status and serialises as `{ _tag, message, ... }`.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Schema from "effect/Schema"

/** The request does not match the contract: a bad path id, query, body or malformed JSON. */
export class BadRequest extends Schema.TaggedError<BadRequest>()(
  "BadRequest",
  {
    message: Schema.String,
    /** Where each problem is: `["path", "productId"]`, `["body", "stock"]`, ... */
    issues: Schema.optional(Schema.Array(Schema.Struct({ path: Schema.Array(Schema.String), message: Schema.String })))
  },
  HttpApiSchema.annotations({ status: 400, description: "The request does not match the contract" })
) {}

/** The request body is larger than the edge accepts. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  { message: Schema.String, maxBytes: Schema.Int },
  HttpApiSchema.annotations({ status: 413, description: "The request body is too large" })
) {}

/** A body that is not JSON: every body of the API is. */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 415, description: "Request bodies are JSON" })
) {}

/** No token, or one that is malformed, expired or forged. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 401, description: "Missing, malformed, expired or forged token" })
) {}

/** A valid token that may not do this: a user acting for another user, or on an admin endpoint. */
export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 403, description: "The token is valid but may not do this" })
) {}

/** No route answers this method and path. */
export class NotFound extends Schema.TaggedError<NotFound>()(
  "NotFound",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 404, description: "No such route" })
) {}

/** A defect: logged in full on the server, answered without details. */
export class InternalError extends Schema.TaggedError<InternalError>()(
  "InternalError",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 500, description: "Unexpected server error" })
) {}

/** A dependency of readiness. */
export const DependencyState = Schema.Literal("up", "down")

/** `GET /health/ready` when the database or the stock cache does not answer in time. */
export class NotReady extends Schema.TaggedError<NotReady>()(
  "NotReady",
  {
    message: Schema.String,
    database: DependencyState,
    stockCache: DependencyState
  },
  HttpApiSchema.annotations({ status: 503, description: "A dependency is down" })
) {}
