/**
 * restock inside another Effect program, sending through its own Notifier:
 * `DATABASE_URL=sqlite:./data/example.sqlite npx tsx examples/own-notifier.ts`
 */
import { Effect, Layer } from "effect"
import { Config, Layers, Notifier, ProductId, Repo, Restock, UserId } from "../src/index.js"

const consoleNotifier = Layer.succeed(Notifier, {
  send: (n) => Effect.log(`to user ${n.userId}: ${n.productName} is back (round ${n.restockRound})`)
})

const program = Effect.gen(function*() {
  const repo = yield* Repo
  const restock = yield* Restock
  const product = yield* repo.upsertProduct(ProductId.make(1), { name: "Blue kettle" })
  for (const user of [1, 2, 3]) yield* repo.subscribe(product.id, UserId.make(user))
  const round = yield* restock.trigger(product.id, { stock: 5 })
  const done = yield* restock.awaitRound(product.id, round.restockRound)
  yield* Effect.log(`round ${done.restockRound}: ${done.status}, ${done.sentCount} sent`)
})

const services = Layer.unwrapEffect(Effect.map(Config.AppConfig, (config) => Layers.servicesWith(config, consoleNotifier)))

Effect.runPromise(program.pipe(Effect.provide(services), Effect.scoped))
