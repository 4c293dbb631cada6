import { defineConfig } from "vitest/config"

/**
 * A second group runs one file at a time, once the rest is done:
 * - tests that measure real time (rates at a sender, leases, crash
 *   recovery): on a 2-core machine, another suite's CPU load would shift
 *   their clocks;
 * - the heaviest suites (a build, a pack and an offline install; a browser; a
 *   million rows loaded; ~4,000 fuzzed requests), which in the first group
 *   starved the engine's virtual-time tests: `TestClock` moves on once every
 *   fiber looks suspended, and a fiber starved of CPU long enough can look so
 *   (one retry started 0.06 ms early in virtual time, once, beside them).
 * (The in-memory limiter's file stays in the first group: its virtual-time
 * tests fail in the shared fork, `testClock.adjust is not a function`.)
 */
const realTime = [
  "test/RealTime/**/*.test.ts",
  "test/Cluster/**/*.test.ts",
  "test/Dispatch/RateLimiter/Redis.test.ts",
  "test/Ship/Build.test.ts",
  "test/Console/Console.test.ts",
  "test/Repo/explainAtScale.test.ts",
  "test/Http/Fuzz.test.ts"
]

const shared = {
  testTimeout: 60_000,
  hookTimeout: 120_000,
  // Suites share one MariaDB and one Redis; each creates its own database / key prefix.
  pool: "forks" as const
}

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          ...shared,
          name: "main",
          include: ["test/**/*.test.ts"],
          exclude: realTime
        }
      },
      {
        test: {
          ...shared,
          name: "real-time",
          include: realTime,
          // One file at a time, in one fork.
          poolOptions: { forks: { singleFork: true } },
          sequence: { groupOrder: 1 }
        }
      }
    ]
  }
})
