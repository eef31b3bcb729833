import { defineConfig } from 'vitest/config';

/**
 * The slow lane: tests on real node processes, jepsen-lite runs, the browser, network
 * namespaces and simulations at scale. Everything else (unit, property, contract, HTTP through
 * inject, default-seed simulation, client) is the fast lane of `npm run test:fast`, the edit
 * loop; `npm test` runs both lanes.
 */
const slowTests = [
  'test/integration/**/*.test.ts',
  'test/multi-host/**/*.test.ts',
  'test/ui/**/*.test.ts',
  'test/cli/**/*.test.ts',
  'test/bench/**/*.test.ts',
  'test/sim/*-scale.sim.test.ts',
  'jepsen-lite/test/short-run.test.ts',
  'jepsen-lite/test/netns-run.test.ts',
  'jepsen-lite/test/netns.test.ts',
  'jepsen-lite/test/proxy.test.ts',
];

// No test asserts on wall-clock time, and a vitest timeout is not an assertion either: it only
// ends a hung test. So every timeout is finite but far above an honest run on a loaded machine
// (the speed of CI machines varies many times over). Suites on real processes set 20 minutes
// themselves (processTestTimeoutMs in test/integration/processes.ts); polls inside tests wait
// for conditions with generous deadlines and fail saying what they saw.
export default defineConfig({
  test: {
    testTimeout: 10 * 60_000,
    hookTimeout: 10 * 60_000,
    teardownTimeout: 10 * 60_000,
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: { name: 'fast', include: ['test/**/*.test.ts', 'jepsen-lite/test/**/*.test.ts'], exclude: slowTests },
      },
      { extends: true, test: { name: 'slow', include: slowTests } },
    ],
  },
});
