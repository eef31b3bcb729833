import { defineConfig } from 'vitest/config';

// No test asserts on wall-clock time, and a vitest timeout is not an assertion either: it only
// ends a hung test. So every timeout is finite but far above an honest run on a loaded machine
// (the speed of CI machines varies many times over). Suites on real processes set 20 minutes
// themselves (processTestTimeoutMs in test/integration/processes.ts); polls inside tests wait
// for conditions with generous deadlines and fail saying what they saw.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'jepsen-lite/test/**/*.test.ts'],
    testTimeout: 10 * 60_000,
    hookTimeout: 10 * 60_000,
    teardownTimeout: 10 * 60_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
