import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The resilience suite runs on its own: npm run test:resilience (vitest.resilience.config.ts).
    exclude: [...configDefaults.exclude, 'test/resilience/**'],
    setupFiles: ['test/setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
