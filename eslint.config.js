// The linter npm test runs before the tests (house rule 9, docs/ARCHITECTURE.md#house-rules: no
// floating promises), and the layer rules of docs/ARCHITECTURE.md#layers. Type-aware, so it sees a
// promise wherever TypeScript does; every TypeScript file of the project is linted.
import tseslint from 'typescript-eslint';

/**
 * The layers of src/ and what each may import (docs/ARCHITECTURE.md#layers): `imports` are the
 * other layers of src/ it may import ('main' is src/main.ts); `external`, when given, are the only
 * node: built-ins and packages it may import, for the reason `why`. A layer imports its own
 * modules freely. Nothing in src/ but the simulator itself imports src/sim: production never
 * loads virtual time or seeded faults.
 */
const layers = {
  util: { imports: [] },
  core: {
    imports: ['util'],
    external: ['node:crypto'],
    why: 'the core is pure (hashes are deterministic); take the time, the randomness or the bytes as an argument',
  },
  ports: { imports: ['core', 'util'], external: [], why: 'ports are interfaces only' },
  config: { imports: ['core', 'util'] },
  engine: {
    imports: ['core', 'ports', 'config', 'util'],
    external: ['node:crypto'],
    why: 'the engine does its I/O through a port (src/ports), so the simulator can run it',
  },
  adapters: { imports: ['core', 'ports', 'util'] },
  sim: { imports: ['core', 'ports', 'config', 'engine', 'adapters', 'util'] },
  http: { imports: ['core', 'engine', 'config', 'util'] },
  client: {
    imports: [],
    external: ['node:crypto', 'undici'],
    why: 'the client is built on its own (tsconfig.client.json) for any Node application (node:crypto places keys on the ring as the nodes do)',
  },
  cli: { imports: ['client', 'config', 'core', 'engine', 'util', 'main'] },
  main: { imports: ['core', 'ports', 'config', 'engine', 'adapters', 'http', 'cli', 'util'] },
};

const escapeRegex = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The rules that hold one layer to its line of `layers`. */
function layerConfig(name, { imports, external, why }) {
  const forbidden = Object.keys(layers).filter((other) => other !== name && !imports.includes(other));
  const allowed =
    imports.length === 0 ? 'nothing from other layers' : `only ${imports.map((other) => (other === 'main' ? 'src/main.ts' : `src/${other}`)).join(', ')}`;
  const where = name === 'main' ? 'src/main.ts' : `src/${name}`;
  const patterns = [
    {
      // A relative import names the layer folder it reaches into (src/main.ts by its file name).
      group: forbidden.map((other) => (other === 'main' ? '**/main.js' : `**/${other}/**`)),
      message: `${where} imports ${allowed} (docs/ARCHITECTURE.md#layers); take what you need as an argument instead`,
    },
  ];
  if (external !== undefined) {
    patterns.push({
      // Any bare specifier (node: built-in or package) that is not on the layer's list.
      regex: `^(?!\\.|(${external.map(escapeRegex).join('|') || '(?!)'})$)`,
      message: `${where} imports no node: built-in or package but ${external.join(', ') || 'none'} (docs/ARCHITECTURE.md#layers): ${why}`,
    });
  }
  return {
    files: [name === 'main' ? 'src/main.ts' : `src/${name}/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', { patterns }],
      // import() and import('...').Type would pass the rule above unseen; only the command line (src/cli) loads modules lazily, to start fast.
      ...(name === 'cli'
        ? {}
        : {
            'no-restricted-syntax': [
              'error',
              {
                selector: 'ImportExpression',
                message: `${where} imports statically, so the layer rules of docs/ARCHITECTURE.md#layers see every import`,
              },
              {
                selector: 'TSImportType',
                message: `${where} imports types with \`import type\`, so the layer rules of docs/ARCHITECTURE.md#layers see every import`,
              },
            ],
          }),
    },
  };
}

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
  ...Object.entries(layers).map(([name, layer]) => layerConfig(name, layer)),
);
