import { type AddressInfo, connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { RingClient, type WatchEvent } from '../../src/client/index.js';
import { appHarness } from './app-harness.js';

/**
 * Goals of GET /watch over HTTP (README, "Watches"): a watch is a text/event-stream of SSE events
 * in the documented format (`ready`, then `put` and `delete` with the key, the value, the context a
 * GET answers and an id); bad input is refused before any stream starts, with the usual error
 * body (bad names, a missing prefix, an id that is no watch's); a watch past watch.maxWatchers is
 * 503 KV_OVERLOADED with Retry-After, and a watch is taken again once one closed; RingClient.watch
 * resumes from an id; a client that stops reading is cut off once its watch overflows (its
 * connection destroyed, not held). A watch never ends by itself, so every read here has a deadline that fails
 * with what it saw, and every stream a test opens is aborted.
 */

const start = appHarness();

async function listening(overrides: unknown = {}): Promise<{ origin: string; service: Awaited<ReturnType<typeof start>>['service'] }> {
  const { app, service } = await start(overrides);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, service };
}

/** How long a test waits for what it expects before it fails saying what it saw (generous: the machine is shared). */
const deadlineMs = 15_000;

/** Awaits `promise`, or fails after deadlineMs with what `saw()` says was seen meanwhile. */
async function within<T>(promise: Promise<T>, what: string, saw: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${deadlineMs} ms; saw: ${JSON.stringify(saw())}`)), deadlineMs);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** An open SSE response read chunk by chunk without ending it (breaking a for-await over the body would close the connection). */
class OpenStream {
  text = '';
  private readonly chunks: AsyncIterator<Buffer>;

  constructor(body: AsyncIterable<Buffer>) {
    this.chunks = body[Symbol.asyncIterator]();
  }

  /** Reads until `enough(text)`, or fails after the deadline with the text so far. */
  async until(enough: (text: string) => boolean, what: string): Promise<string> {
    while (!enough(this.text)) {
      const chunk = await within(this.chunks.next(), what, () => this.text);
      if (chunk.done === true) throw new Error(`the stream ended before ${what}; saw: ${JSON.stringify(this.text)}`);
      this.text += chunk.value.toString('utf8');
    }
    return this.text;
  }
}

/**
 * GET `url` over real HTTP; a refusal's status and body, or, when a stream started instead
 * (status 200), its status and the first text it sent: the stream is aborted either way, so a
 * refusal that is not one cannot hang the test.
 */
async function answerOf(origin: string, url: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  const controller = new AbortController();
  try {
    const response = await within(request(`${origin}${url}`, { headers, signal: controller.signal }), `answer to ${url}`, () => '');
    if (response.statusCode !== 200) return { status: response.statusCode, text: await response.body.text() };
    const stream = new OpenStream(response.body as AsyncIterable<Buffer>);
    await stream.until((text) => text.length > 0, `the first text of ${url}`);
    return { status: 200, text: stream.text };
  } finally {
    controller.abort();
  }
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
      expect(parsed[0]).toMatchObject({
        event: 'event: put',
        data: { bucket: 'b', key: 'k', value: Buffer.from('hello').toString('base64'), contentType: 'text/plain', dot: { node: 'fake', counter: 1 } },
      });
      expect(parsed[1]!.event).toBe('event: delete');
      expect(parsed[1]!.data).not.toHaveProperty('value');
      // The context of the delete event is what a GET of the key answers now.
      expect(parsed[1]!.data.context).toBe(read.context);
    } finally {
      await client.close();
    }
  });

  it('with ?dt=true streams an update event per data type update, with its type, state and dot; a plain watch of the same names sees none', async () => {
    const { origin } = await listening();
    const controller = new AbortController();
    try {
      const open = async (url: string): Promise<OpenStream> => {
        const response = await request(`${origin}${url}`, { signal: controller.signal });
        expect(response.statusCode, url).toBe(200);
        const stream = new OpenStream(response.body as AsyncIterable<Buffer>);
        await stream.until((text) => text.includes('event: ready'), `the ready of ${url}`);
        return stream;
      };
      const counter = await open('/watch/b/visits?dt=true');
      const dataTypes = await open('/watch/b?prefix=&dt=true');
      const plain = await open('/watch/b?prefix=');
      const client = new RingClient({ nodes: [origin] });
      try {
        const watched = client.watch('b', 'visits', { dataTypes: true, signal: controller.signal });
        expect((await within(watched.next(), 'the client watch ready', () => ''))?.value?.type).toBe('ready');
        await client.dt.increment('b', 'visits', 5);
        await client.dt.increment('b', 'visits', -2);
        await client.dt.updateSet('b', 'members', { add: ['ann'] });
        await client.put('b', 'visits', 'plain');
        // RingClient.watch with dataTypes yields the same updates.
        const first = await within(watched.next(), 'the client watch first update', () => '');
        expect(first.value).toMatchObject({ type: 'update', bucket: 'b', key: 'visits', dataType: 'counter', value: 5, dot: { node: 'fake', counter: 1 } });
        await within(watched.return(), 'the end of the client watch', () => '');
      } finally {
        await client.close();
      }
      const events = (stream: OpenStream, name: string) =>
        stream.text
          .split('\n\n')
          .filter((block) => block.startsWith(`event: ${name}`))
          .map((block) => JSON.parse(block.split('\n')[2]!.replace(/^data: /, '')) as Record<string, unknown>);
      await counter.until(() => events(counter, 'update').length >= 2, 'the two counter updates');
      expect(events(counter, 'update')).toEqual([
        { bucket: 'b', key: 'visits', type: 'counter', value: 5, dot: { node: 'fake', counter: 1 } },
        { bucket: 'b', key: 'visits', type: 'counter', value: 3, dot: { node: 'fake', counter: 2 } },
      ]);
      await dataTypes.until(() => events(dataTypes, 'update').length >= 3, 'every data type update');
      expect(events(dataTypes, 'update')[2]).toMatchObject({ bucket: 'b', key: 'members', type: 'set', value: ['ann'], dot: { node: 'fake', counter: 1 } });
      expect(events(dataTypes, 'update')[2]!.context).toMatch(/^c/);
      expect(events(dataTypes, 'put'), 'a data type watch sees no plain write').toEqual([]);
      await plain.until(() => events(plain, 'put').length >= 1, 'the plain write');
      expect(events(plain, 'put').map((event) => event.key)).toEqual(['visits']);
      expect(events(plain, 'update'), 'a plain watch sees no data type update').toEqual([]);
    } finally {
      controller.abort();
    }
  });

  it("refuses bad input before a stream starts: names, a missing prefix, an id that is no watch's", async () => {
    const { origin } = await listening({ limits: { maxBucketBytes: 8, maxKeyBytes: 16 } });
    const cases: [string, Record<string, string>, number, string][] = [
      ['/watch/a-bucket-name-too-long/k', {}, 414, 'KV_BUCKET_TOO_LONG'],
      ['/watch/b/a-key-name-that-is-too-long', {}, 414, 'KV_KEY_TOO_LONG'],
      ['/watch/b?prefix=a-prefix-that-is-too-long', {}, 414, 'KV_KEY_TOO_LONG'],
      ['/watch/b', {}, 400, 'KV_BAD_PARAMETER'],
      ['/watch/b?prefix=p&other=1', {}, 400, 'KV_BAD_PARAMETER'],
      ['/watch/b/k?other=1', {}, 400, 'KV_BAD_PARAMETER'],
      ['/watch/b/k', { 'last-event-id': 'not an id' }, 400, 'KV_BAD_REQUEST'],
      ['/watch/b/%00counter', {}, 400, 'KV_BAD_REQUEST'],
      ['/watch/b/%00counter?dt=true', {}, 400, 'KV_BAD_REQUEST'],
      ['/watch/b?prefix=%00dt%00', {}, 400, 'KV_BAD_REQUEST'],
      ['/watch/b/k?dt=yes', {}, 400, 'KV_BAD_PARAMETER'],
    ];
    for (const [url, headers, status, code] of cases) {
      const answer = await answerOf(origin, url, headers);
      expect(answer.status, `${url}: ${answer.text}`).toBe(status);
      expect(JSON.parse(answer.text), url).toMatchObject({ error: { code } });
    }
  });

  it('cuts off a client that stopped reading once its watch overflows: the server destroys the connection instead of holding it', async () => {
    const { origin, service } = await listening({ watch: { maxQueuedEvents: 4 } });
    const { hostname, port } = new URL(origin);
    const socket = connect(Number(port), hostname);
    let received = 0;
    const gone = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      // Reads the headers and the ready event, then nothing more: the socket's buffers fill.
      if (received > 0) socket.pause();
    });
    socket.write(`GET /watch/b/k HTTP/1.1\r\nhost: ${hostname}\r\naccept: text/event-stream\r\n\r\n`);
    await within(
      (async () => {
        while (service.watches.count === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      })(),
      'the watch to start',
      () => `received ${received} bytes`,
    );
    // 64 writes of 256 KiB: far more than the socket buffers and the watch's queue of 4 hold.
    const value = Buffer.alloc(256 * 1024, 1);
    for (let index = 0; index < 64; index++)
      await service.put({ bucket: 'b', key: 'k', value, contentType: 'application/octet-stream', context: undefined, options: {} });
    await within(
      gone,
      'the server to close the connection of the client that stopped reading',
      () => `received ${received} bytes; watches served ${service.watches.count}`,
    );
    expect(service.watches.count).toBe(0);
  });

  it('answers 503 KV_OVERLOADED with Retry-After past watch.maxWatchers, and takes a watch again once one closed', async () => {
    const { origin, service } = await listening({ watch: { maxWatchers: 1 } });
    const controller = new AbortController();
    try {
      const first = await request(`${origin}/watch/b/k`, { signal: controller.signal });
      expect(first.statusCode).toBe(200);
      await new OpenStream(first.body as AsyncIterable<Buffer>).until((text) => text.includes('event: ready'), "the first watch's ready");
      const refused = await answerOf(origin, '/watch/b?prefix=', {});
      expect(refused.status, refused.text).toBe(503);
      expect(JSON.parse(refused.text)).toMatchObject({ error: { code: 'KV_OVERLOADED' } });
      const again = await request(`${origin}/watch/b?prefix=`);
      expect(again.headers['retry-after']).toBe('1');
      await again.body.dump();
    } finally {
      controller.abort();
    }
    // The server notices the closed connection and lets the watcher go.
    const answers: number[] = [];
    await within(
      (async () => {
        for (;;) {
          const answer = await answerOf(origin, '/watch/b?prefix=', {});
          answers.push(answer.status);
          if (answer.status === 200) return;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })(),
      'watch taken again after the first closed',
      () => `answers ${answers.join(',')}; watches served ${service.watches.count}`,
    );
  });

  it('RingClient.watch yields the writes, and resumed with the last id yields the writes made meanwhile, none twice', async () => {
    const { origin } = await listening();
    const client = new RingClient({ nodes: [origin] });
    const stop = new AbortController();
    const seen: string[] = [];
    const label = (event: WatchEvent): string => (event.type === 'put' || event.type === 'delete' ? `${event.type} ${event.key}` : event.type);
    try {
      const events = client.watch('b', { prefix: 'p-' }, { signal: stop.signal, reconnectDelayMs: 50 });
      const next = async (): Promise<WatchEvent> => {
        const item = await within(events.next(), 'watch event', () => seen.join(', '));
        if (item.done === true) throw new Error(`the watch ended; saw: ${seen.join(', ')}`);
        seen.push(label(item.value));
        return item.value;
      };
      expect((await next()).type).toBe('ready');
      await client.put('b', 'p-1', 'one');
      await client.put('b', 'q-1', 'not followed');
      await client.put('b', 'p-2', 'two');
      expect(await next()).toMatchObject({ type: 'put', key: 'p-1', value: Buffer.from('one') });
      const second = await next();
      expect(second).toMatchObject({ type: 'put', key: 'p-2', value: Buffer.from('two') });
      await within(events.return(), 'end of the first watch', () => seen.join(', '));
      await client.put('b', 'p-3', 'three');
      const deleted = await client.put('b', 'p-4', 'four');
      await client.delete('b', 'p-4', { context: deleted.context });
      const resumed = client.watch('b', { prefix: 'p-' }, { lastEventId: second.id, signal: stop.signal, reconnectDelayMs: 50 });
      const types: string[] = [];
      await within(
        (async () => {
          for await (const event of resumed) {
            types.push(label(event));
            if (types.includes('delete p-4')) break;
          }
        })(),
        "the resumed watch's delete p-4",
        () => types.join(', '),
      );
      expect(types.filter((type) => type !== 'ready')).toEqual(['put p-3', 'put p-4', 'delete p-4']);
    } finally {
      stop.abort();
      await client.close();
    }
  });
});
