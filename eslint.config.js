// The linter npm test runs before the tests (house rule 9: no floating promises). Type-aware, so
// it sees a promise wherever TypeScript does; every TypeScript file of the project is linted.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // An unhandled rejection kills a node: every promise is awaited, returned, or given a handler.
      '@typescript-eslint/no-floating-promises': 'error',
      // A promise where a callback's return is ignored (an event handler, a timer) is a floating promise too.
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
    },
  },
  {
    // The layering of DESIGN.md: the core is pure, so it imports only the core and src/util (and
    // node:crypto for hashes, which are deterministic): no disk, network, clock or process.
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/engine/**', '**/ports/**', '**/adapters/**', '**/http/**', '**/cli/**', '**/client/**', '**/main.js', 'node:fs', 'node:fs/*', 'node:net', 'node:tls', 'node:http', 'node:https', 'node:child_process', 'node:os', 'node:process', 'node:timers', 'node:timers/*', 'fastify', 'undici', 'level', 'classic-level', 'memory-level'],
              message: 'src/core is pure: it imports only src/core and src/util (DESIGN.md, layers); take what you need as an argument',
            },
          ],
        },
      ],
    },
  },
);
