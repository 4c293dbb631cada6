/**
 * How a failed SQL statement reads in a message. `SqlError`'s own message is
 * generic ("Failed to execute statement"); the driver's error beneath it says
 * what went wrong, so that is the one shown.
 */
import { describeCause } from "../Domain/Errors.js"

/** The message of `error`'s cause when it has one, else of `error` itself. */
export const sqlCauseMessage = (error: unknown): string =>
  describeCause(typeof error === "object" && error !== null && "cause" in error && error.cause !== undefined ? error.cause : error)
