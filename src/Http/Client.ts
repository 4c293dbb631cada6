/**
 * A typed client of restock's HTTP API for other Effect programs: every
 * endpoint of `Api`, derived by `HttpApiClient` from the same schemas the
 * server decodes with (so a request the server would refuse as malformed does
 * not type-check), and the progress of a round as a `Stream` of `Round`s read
 * from the admin event stream.
 *
 *     const client = yield* RestockClient.make({ baseUrl, token: adminToken })
 *     const round = yield* client.rounds.restock({ path: { productId }, payload: { stock: 5 } })
 *     yield* client.progress(productId).pipe(Stream.runForEach((round) => Effect.log(round?.sentCount)))
 *
 * It needs an `HttpClient` (`FetchHttpClient.layer`, or `NodeHttpClient.layerUndici`).
 */
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Sse from "@effect/experimental/Sse"
import * as Effect from "effect/Effect"
import type * as ParseResult from "effect/ParseResult"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { ProductId } from "../Domain/Ids.js"
import { Round } from "../Domain/Round.js"
import { Api } from "./Api.js"

export interface Options {
  /** Where the service listens: `http://127.0.0.1:8080`. */
  readonly baseUrl: string | URL
  /** Sent as `Authorization: Bearer …` on every request: the admin token, or a user's JWT for the user endpoints. */
  readonly token?: string | Redacted.Redacted<string> | undefined
}

/** A `progress` event's data: the latest round, or `null` while the product has none. */
const ProgressEvent = Schema.parseJson(Schema.NullOr(Round))

/** Every endpoint of the API, grouped as `Api` groups them, and the progress stream of a product's latest round. */
export const make = (options: Options) =>
  Effect.gen(function*() {
    const token = options.token === undefined ? undefined : Redacted.isRedacted(options.token)
      ? options.token
      : Redacted.make(options.token)
    const base = yield* HttpClient.HttpClient
    const http = token === undefined ? base : base.pipe(HttpClient.mapRequest(HttpClientRequest.bearerToken(token)))
    const api = yield* HttpApiClient.makeWith(Api, { httpClient: http, baseUrl: options.baseUrl })

    /**
     * The product's latest round (`null` if it has none), then every change
     * of it, as the admin stream sends them (at least every 250 ms while
     * sending); the stream ends after the round's terminal status.
     */
    const progress = (productId: ProductId): Stream.Stream<Round | null, HttpClientError.HttpClientError | ParseResult.ParseError> =>
      HttpClient.filterStatusOk(http).get(new URL(`/admin/products/${productId}/notifications/stream`, options.baseUrl), {
        headers: { accept: "text/event-stream" }
      }).pipe(
        Effect.map((response) => response.stream),
        Stream.unwrap,
        Stream.decodeText(),
        Stream.pipeThroughChannel(Sse.makeChannel()),
        Stream.filter((event) => event.event === "progress"),
        Stream.mapEffect((event) => Schema.decode(ProgressEvent)(event.data))
      )

    return { ...api, progress }
  })

export type Client = Effect.Effect.Success<ReturnType<typeof make>>
