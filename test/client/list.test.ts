import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { RingClient } from '../../src/client/index.js';
import { buildApp } from '../../src/http/app.js';
import { FakeKvService, testConfig } from '../http/fake-service.js';

/** Goal: RingClient.list walks a whole bucket page by page over real HTTP as an async iterator, following the `next` cursor, with prefix and a start cursor. */

const service = new FakeKvService(testConfig());
const app = await buildApp({ service, config: service.config });
await app.listen({ host: '127.0.0.1', port: 0 });
const client = new RingClient({ nodes: [`127.0.0.1:${(app.server.address() as AddressInfo).port}`] });

afterAll(async () => {
  await client.close();
  await app.close();
});

describe('RingClient.list', () => {
  it('yields every key of the bucket once, in byte order, across pages', async () => {
    const keys = Array.from({ length: 25 }, (_, index) => `key/${String(index).padStart(2, '0')}`);
    for (const key of keys) await client.put('listed', key, key);
    await client.put('other', 'key/00', 'x');
    const seen: string[] = [];
    for await (const key of client.list('listed', { limit: 7 })) seen.push(key);
    expect(seen).toEqual(keys);
    const listCalls = service.calls.filter((call) => call.method === 'list');
    expect(listCalls.length).toBe(4);
    const prefixed: string[] = [];
    for await (const key of client.list('listed', { prefix: 'key/1', after: 'key/12' })) prefixed.push(key);
    expect(prefixed).toEqual(['key/13', 'key/14', 'key/15', 'key/16', 'key/17', 'key/18', 'key/19']);
    expect(await client.listPage('listed', { limit: 2 })).toEqual({ keys: ['key/00', 'key/01'], next: 'key/01' });
  });
});
