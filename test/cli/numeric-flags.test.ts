import { execFile } from 'node:child_process';
import { type Server, createServer } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Goal (issue 18, a new user's row): a numeric flag out of range (`--timeout-ms x`, `--r 0`,
 * `--ttl -1` ...) is refused before any request is sent, with one line naming the flag, the
 * accepted range and what was typed, and a non-zero exit code. A small HTTP server stands in for
 * the node and records whether anything reached it.
 */

const bin = join(import.meta.dirname, '..', '..', 'bin', 'ringkv.js');
const seen: string[] = [];
let server: Server;
let node = '';

beforeAll(async () => {
  server = createServer((request, response) => {
    seen.push(`${request.method} ${request.url}`);
    response.writeHead(204).end();
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  node = `127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
});
afterAll(async () => {
  await new Promise((done) => server.close(done));
});

function ringkv(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args, '--node', node], (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

const cases: readonly (readonly [readonly string[], string])[] = [
  [['get', 'b', 'k', '--timeout-ms', 'x'], "--timeout-ms must be an integer from 1 to 600000 (milliseconds), got 'x'"],
  [['delete', 'b', 'k', '--timeout-ms', '0'], "--timeout-ms must be an integer from 1 to 600000 (milliseconds), got '0'"],
  [['list', 'b', '--timeout-ms', '600001'], "--timeout-ms must be an integer from 1 to 600000 (milliseconds), got '600001'"],
  [['get', 'b', 'k', '--r', '0'], "--r must be one, quorum, all or an integer from 1 to 16 (at most the bucket's n_val), got '0'"],
  [['put', 'b', 'k', 'v', '--w', 'two'], "--w must be one, quorum, all or an integer from 1 to 16 (at most the bucket's n_val), got 'two'"],
  [['delete', 'b', 'k', '--dw', '1.5'], "--dw must be one, quorum, all or an integer from 1 to 16 (at most the bucket's n_val), got '1.5'"],
  [['put', 'b', 'k', 'v', '--ttl', '-1'], "--ttl must be an integer from 1 to 315360000 (seconds), got '-1'"],
  [['list', 'b', '--limit', '0'], "--limit must be an integer from 1 to 10000 (keys per page), got '0'"],
  [['counter', 'b', 'k', '--incr', '1.5'], "--incr must be an integer from -9007199254740991 to 9007199254740991 (negative to decrement), got '1.5'"],
  [['compact', '--partition', 'x'], "--partition must be an integer from 0 to 65535 (below the cluster's partitionCount), got 'x'"],
  [
    ['backup', '--to', join(import.meta.dirname, 'never-made'), '--rate', '-1'],
    "--rate must be megabytes per second, a number from 0 (0: unthrottled) to 999999999, got '-1'",
  ],
];

describe('numeric flags of the ringkv command', () => {
  it.each(cases)('refuses %j in one line naming the flag and its range, exits 1, sends nothing', async (args, line) => {
    const before = seen.length;
    const outcome = await ringkv(args);
    expect(outcome.code).toBe(1);
    expect(outcome.stderr.split('\n').filter((text) => text.trim() !== '')).toEqual([`ringkv: ${line}`]);
    expect(seen.slice(before)).toEqual([]);
  });

  it('takes the values in range and sends them', async () => {
    const outcome = await ringkv(['put', 'b', 'k', 'v', '--w', '2', '--pw', 'one', '--timeout-ms', '600000', '--ttl', '60']);
    expect(outcome.stderr).toBe('');
    expect(outcome.code).toBe(0);
    expect(seen.at(-1)).toBe('PUT /kv/b/k?w=2&pw=one&timeout_ms=600000&ttl=60');
  });
});
