import { defineConfig } from 'vitest/config';

/**
 * The resilience suite (`npm run test:resilience`): bad input at every door, duplicates and concurrency,
 * faults, secrets, IAM. Kept out of `npm test` (see vitest.config.ts) because it runs real local
 * pipelines and processes; it prints its figures at the end (test/resilience/summary-reporter.ts).
 */
export default defineConfig({
  test: {
    include: ['test/resilience/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    reporters: ['default', './test/resilience/summary-reporter.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
  },
});
