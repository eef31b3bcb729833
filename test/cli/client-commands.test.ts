import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * Goal: `ringkv delete` takes the same quorum and deadline options as `ringkv put` (--pw, --dw,
 * --timeout-ms) and sends them, to the read that fetches its context too (its deadline).
 * A small HTTP server stands in for the node and records what the command asked.
 */

const bin = join(import.meta.dirname, '..', '..', 'bin', 'ringkv.js');

describe('ringkv delete', () => {
  it('sends --pw, --dw and --timeout-ms', async () => {
    const seen: string[] = [];
    const server = createServer((request, response) => {
      seen.push(`${request.method} ${request.url}`);
      if (request.method === 'GET') {
        response
          .writeHead(404, { 'content-type': 'application/json', 'x-ringkv-context': 'c1.AA' })
          .end('{"error":{"code":"KV_NOT_FOUND","message":"no value"}}');
      } else {
        response.writeHead(204, { 'x-ringkv-context': 'c2.AA' }).end();
      }
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    try {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      const { stdout } = await promisify(execFile)(process.execPath, [
        bin,
        'delete',
        'b',
        'k',
        '--node',
        `127.0.0.1:${port}`,
        '--w',
        '2',
        '--pw',
        '1',
        '--dw',
        '1',
        '--timeout-ms',
        '700',
      ]);
      expect(stdout.trim()).toBe('deleted');
      expect(seen).toEqual(['GET /kv/b/k?timeout_ms=700', 'DELETE /kv/b/k?w=2&pw=1&dw=1&timeout_ms=700']);
    } finally {
      await new Promise((done) => server.close(done));
    }
  });
});
