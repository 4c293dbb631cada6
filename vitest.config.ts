import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Suites share one MariaDB and one Redis; each creates its own database / key prefix.
    pool: "forks"
  }
})
