import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { RingClient, type WatchEvent } from '../../src/client/index.js';
import { appHarness } from './app-harness.js';

/**
 * Goals of GET /watch over HTTP (README, "Watches"): a watch is a text/event-stream of SSE events
 * in the documented format (`ready`, then `put` and `delete` with the key, the value, the context a
 * GET answers and an id); bad input is refused before any stream starts, with the usual error
 * body (bad names, a missing prefix, an id that is no watch's), and a watch past
 * watch.maxWatchers is 503 KV_OVERLOADED with Retry-After; RingClient.watch resumes from an id.
 */

const start = appHarness();

async function listening(overrides: unknown = {}): Promise<{ origin: string; service: Awaited<ReturnType<typeof start>>['service'] }> {
  const { app, service } = await start(overrides);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, service };
}

/** Reads SSE text from a response body until `done` says it has enough, then stops reading. */
async function readUntil(body: AsyncIterable<Buffer>, done: (text: string) => boolean): Promise<string> {
  let text = '';
  for await (const chunk of body) {
    text += chunk.toString('utf8');
    if (done(text)) break;
  }
  return text;
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

  it('refuses bad input before a stream starts: names, a missing prefix, an id that is no watch\'s', async () => {
    const { app } = await start({ limits: { maxBucketBytes: 8 } });
    const cases: [string, Record<string, string>, number, string][] = [
      ['/watch/a-bucket-name-too-long/k', {}, 414, 'KV_BUCKET_TOO_LONG'],
      ['/watch/b', {}, 400, 'KV_BAD_PARAMETER'],
      ['/watch/b?prefix=p&other=1', {}, 400, 'KV_BAD_PARAMETER'],
      ['/watch/b/k', { 'last-event-id': 'not an id' }, 400, 'KV_BAD_REQUEST'],
      ['/watch/b/%00counter', {}, 400, 'KV_BAD_REQUEST'],
    ];
    for (const [url, headers, status, code] of cases) {
      const answer = await app.inject({ method: 'GET', url, headers });
      expect(answer.statusCode, url).toBe(status);
      expect(answer.json(), url).toMatchObject({ error: { code } });
    }
  });

  it('answers 503 KV_OVERLOADED with Retry-After past watch.maxWatchers, and takes a watch again once one closed', async () => {
    const { origin } = await listening({ watch: { maxWatchers: 1 } });
    const controller = new AbortController();
    const first = await request(`${origin}/watch/b/k`, { signal: controller.signal });
    expect(first.statusCode).toBe(200);
    await readUntil(first.body as AsyncIterable<Buffer>, (text) => text.includes('event: ready'));
    const refused = await request(`${origin}/watch/b?prefix=`);
    expect(refused.statusCode).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(await refused.body.json()).toMatchObject({ error: { code: 'KV_OVERLOADED' } });
    controller.abort();
    await first.body.dump().catch(() => undefined);
    // The server notices the closed connection and lets the watcher go.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const again = await request(`${origin}/watch/b?prefix=`);
      if (again.statusCode === 200) {
        await again.body.dump().catch(() => undefined);
        break;
      }
      await again.body.dump();
      if (Date.now() > deadline) throw new Error(`a watch is still refused with ${again.statusCode} after the first closed`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  it('RingClient.watch yields the writes, and resumed with the last id yields the writes made meanwhile, none twice', async () => {
    const { origin } = await listening();
    const client = new RingClient({ nodes: [origin] });
    try {
      const seen: WatchEvent[] = [];
      const events = client.watch('b', { prefix: 'p-' });
      const next = async (): Promise<WatchEvent> => {
        const item = await events.next();
        if (item.done === true) throw new Error('the watch ended');
        seen.push(item.value);
        return item.value;
      };
      expect((await next()).type).toBe('ready');
      await client.put('b', 'p-1', 'one');
      await client.put('b', 'q-1', 'not followed');
      await client.put('b', 'p-2', 'two');
      expect(await next()).toMatchObject({ type: 'put', key: 'p-1', value: Buffer.from('one') });
      const second = await next();
      expect(second).toMatchObject({ type: 'put', key: 'p-2', value: Buffer.from('two') });
      await events.return();
      await client.put('b', 'p-3', 'three');
      const deleted = await client.put('b', 'p-4', 'four');
      await client.delete('b', 'p-4', { context: deleted.context });
      const resumed = client.watch('b', { prefix: 'p-' }, { lastEventId: second.id });
      const types: string[] = [];
      for await (const event of resumed) {
        types.push(event.type === 'put' || event.type === 'delete' ? `${event.type} ${event.key}` : event.type);
        if (types.includes('delete p-4')) break;
      }
      expect(types.filter((type) => type !== 'ready')).toEqual(['put p-3', 'put p-4', 'delete p-4']);
    } finally {
      await client.close();
    }
  });
});
