import { defineConfig } from "vitest/config"

/**
 * Tests that measure real time (rates at a sender, leases, crash recovery)
 * run in a second group, one file at a time, once the rest is done: on a
 * 2-core machine, another suite's CPU load would otherwise shift their clocks.
 */
const realTime = [
  "test/RealTime/**/*.test.ts",
  "test/Cluster/**/*.test.ts",
  "test/RateLimiter/Redis.test.ts",
  "test/RateLimiter/Memory.test.ts"
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
