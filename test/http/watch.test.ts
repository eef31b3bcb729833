import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { RingClient } from '../../src/client/index.js';
import { appHarness } from './app-harness.js';

/**
 * Goals of GET /watch over HTTP (README, "Watches"): a watch is a text/event-stream of SSE events
 * in the documented format (`ready`, then `put` and `delete` with the key, the value, the context a
 * GET answers and an id). The refusals (bad names, a missing prefix, KV_OVERLOADED past
 * watch.maxWatchers, a bad id) and resuming are covered in test/sim/watch.sim.test.ts; their HTTP
 * cases hung on a stream that never ended and are not here yet.
 */

const start = appHarness();

async function listening(overrides: unknown = {}): Promise<{ origin: string; service: Awaited<ReturnType<typeof start>>['service'] }> {
  const { app, service } = await start(overrides);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, service };
}

describe('GET /watch', () => {
  it('streams ready, then a put and a delete event per write, in the documented SSE format', async () => {
    const { origin } = await listening();
    const response = await request(`${origin}/watch/b/k`, { headers: { accept: 'text/event-stream' } });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(response.headers['cache-control']).toBe('no-cache');
    const body = response.body as AsyncIterable<Buffer>;
    const iterator = body[Symbol.asyncIterator]();
    let text = '';
    while (!text.includes('event: ready')) text += ((await iterator.next()).value as Buffer).toString('utf8');
    expect(text).toMatch(/^retry: 1000\n\nevent: ready\nid: [A-Za-z0-9_-]+\ndata: \{\}\n\n$/);
    const client = new RingClient({ nodes: [origin] });
    try {
      const written = await client.put('b', 'k', 'hello', { contentType: 'text/plain' });
      await client.put('b', 'other', 'not followed');
      await client.delete('b', 'k', { context: written.context });
      const read = await client.get('b', 'k');
      text = '';
      while ((text.match(/event: (put|delete)/g) ?? []).length < 2) text += ((await iterator.next()).value as Buffer).toString('utf8');
      await iterator.return?.();
      const blocks = text.split('\n\n').filter((block) => block.startsWith('event: put') || block.startsWith('event: delete'));
      const parsed = blocks.map((block) => {
        const [event, id, data] = block.split('\n');
        expect(id).toMatch(/^id: [A-Za-z0-9_-]+$/);
        return { event, data: JSON.parse(data!.replace(/^data: /, '')) as Record<string, unknown> };
      });
      expect(parsed[0]).toMatchObject({ event: 'event: put', data: { bucket: 'b', key: 'k', value: Buffer.from('hello').toString('base64'), contentType: 'text/plain', dot: { node: 'fake', counter: 1 } } });
      expect(parsed[1]!.event).toBe('event: delete');
      expect(parsed[1]!.data).not.toHaveProperty('value');
      // The context of the delete event is what a GET of the key answers now.
      expect(parsed[1]!.data.context).toBe(read.context);
    } finally {
      await client.close();
    }
  });
});
