import { defineConfig } from 'vitest/config';

// Integration tests start real node processes on loopback, so they get longer timeouts;
// they never sleep for fixed times, they wait for conditions with deadlines.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'jepsen-lite/test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
