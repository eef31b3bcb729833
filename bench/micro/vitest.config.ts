import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

/**
 * The micro-benchmarks' own vitest config (`npm run bench:micro`): only the TypeScript sources
 * under bench/micro, never the copies tsc compiles into dist/bench/micro, and no tests.
 */
export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: [],
    benchmark: { include: ['bench/micro/**/*.bench.ts'], exclude: ['dist/**', 'node_modules/**'] },
  },
});
