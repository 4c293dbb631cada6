import { Layer } from "effect"
import * as SqlRepo from "../../src/Repo/Sql.js"
import { repoContract } from "../contracts/Repo.contract.js"
import { layerSqlite } from "../support/Mysql.js"

repoContract("SQLite", SqlRepo.layer.pipe(Layer.provideMerge(layerSqlite)))
