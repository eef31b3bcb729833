import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { temporaryFolder } from '../integration/processes.js';

/**
 * Goal: the `ringkv` command as a new user gets it. `npm link --ignore-scripts` (the README's way
 * to put it on PATH) links the folder without copying or rebuilding it, the linked command runs
 * from PATH, and `ringkv --help` loads none of the node's heavy modules (fastify, undici, LevelDB,
 * pino, the config schema): they are imported only by the subcommand that needs them.
 */

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'ringkv.js');
const folder = temporaryFolder('ringkv-bin-');
afterAll(() => folder.remove());

/** The modules `node bin/ringkv.js ...args` loads, as file URLs. */
async function modulesLoadedBy(args: string[]): Promise<string[]> {
  const trace = join(folder.path, `trace-${args.join('-')}.txt`);
  writeFileSync(trace, '');
  await run(process.execPath, ['--import', join(root, 'test', 'support', 'trace-imports.mjs'), bin, ...args], {
    env: { ...process.env, RINGKV_TRACE_IMPORTS: trace },
  });
  return readFileSync(trace, 'utf8')
    .split('\n')
    .filter((line) => line !== '');
}

const heavy = [
  '/node_modules/fastify/',
  '/node_modules/undici/',
  '/node_modules/classic-level/',
  '/node_modules/pino/',
  '/node_modules/@sinclair/typebox/',
  '/dist/src/engine/',
  '/dist/src/client/',
];

describe('the ringkv command', () => {
  it('answers --help loading commander and nothing heavy', async () => {
    const loaded = await modulesLoadedBy(['--help']);
    expect(loaded.some((url) => url.includes('/node_modules/commander/'))).toBe(true);
    expect(loaded.filter((url) => heavy.some((part) => url.includes(part)))).toEqual([]);
  });

  it('loads the client only for client commands, and the schema only for config commands', async () => {
    const help = await modulesLoadedBy(['get', '--help']);
    expect(help.filter((url) => heavy.some((part) => url.includes(part)))).toEqual([]);
    const table = await modulesLoadedBy(['config', 'table']);
    expect(table.some((url) => url.includes('/node_modules/@sinclair/typebox/'))).toBe(true);
    expect(
      table.filter((url) => ['/node_modules/fastify/', '/node_modules/undici/', '/node_modules/classic-level/'].some((part) => url.includes(part))),
    ).toEqual([]);
  });

  it('is on PATH after `npm link --ignore-scripts`, without a rebuild, and runs from there', async () => {
    const prefix = join(folder.path, 'prefix');
    const built = readFileSync(join(root, 'dist', 'src', 'cli', 'main.js'));
    await run('npm', ['link', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: root, env: { ...process.env, npm_config_prefix: prefix } });
    const linked = join(prefix, 'bin', 'ringkv');
    expect(existsSync(linked)).toBe(true);
    // The link points at this folder: the build a user just made is the one that runs.
    expect(readFileSync(join(root, 'dist', 'src', 'cli', 'main.js')).equals(built)).toBe(true);
    const path = `${join(prefix, 'bin')}${delimiter}${process.env.PATH ?? ''}`;
    const help = await run('ringkv', ['--help'], { env: { ...process.env, PATH: path } });
    expect(help.stdout).toMatch(/Usage: ringkv/);
    const file = join(folder.path, 'typo.json');
    writeFileSync(file, JSON.stringify({ limits: { requestTimoutMs: 100 } }));
    const check = await run('ringkv', ['config', 'check', file], { env: { ...process.env, PATH: path } }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(check.code).toBe(1);
    expect(check.stderr).toMatch(/unknown config key 'limits\.requestTimoutMs'.*did you mean 'limits\.requestTimeoutMs'/);
  });
});
