/**
 * Every migration, in order. Imported statically (not discovered on disk) so
 * that they run the same from source and from a build.
 */
import * as Migrator from "@effect/sql/Migrator"
import createTables from "./0001_create_tables.js"
import historyRetention from "./0002_history_retention.js"
import sendPolicy from "./0003_send_policy.js"

export const loader = Migrator.fromRecord({
  "0001_create_tables": createTables,
  "0002_history_retention": historyRetention,
  "0003_send_policy": sendPolicy
})
