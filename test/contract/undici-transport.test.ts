import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UndiciTransport } from '../../src/adapters/undici-transport.js';
import { decodeRequestBatch, encodeReplyBatch } from '../../src/core/wire/codec.js';
import type { PeerReply, PeerRequest } from '../../src/core/wire/messages.js';

/**
 * The peer transport against a real loopback server: messages sent together travel as one
 * batch, large values split batches, the secret travels on every call, and a silent or absent
 * peer gives KV_TIMEOUT or KV_PEER_UNREACHABLE instead of hanging.
 */
describe('undici peer transport', () => {
  const secret = 'transport-test-secret-0123456789';
  let server: Server;
  let address: string;
  const batchSizes: number[] = [];
  let holdReplies = false;

  beforeAll(async () => {
    server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        if (request.headers['x-ringkv-secret'] !== secret) {
          response.writeHead(401).end();
          return;
        }
        const requests = decodeRequestBatch(Buffer.concat(chunks));
        batchSizes.push(requests.length);
        if (holdReplies) return;
        const replies = requests.map((message: PeerRequest): PeerReply =>
          message.type === 'replica-get' ? { type: 'replica-get-reply', object: null } : { type: 'replica-put-reply', durable: false },
        );
        response.writeHead(200, { 'content-type': 'application/octet-stream' }).end(encodeReplyBatch(replies));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('sends messages of the same turn to one peer as one batch and answers each in order', async () => {
    const transport = new UndiciTransport({ secret, connectionsPerPeer: 1 });
    batchSizes.length = 0;
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        transport.request(address, index % 2 === 0 ? { type: 'replica-get', bucket: 'b', key: `k${index}` } : { type: 'gossip', state: {} }, { timeoutMs: 5000 }),
      ),
    );
    expect(replies[0]).toEqual({ type: 'replica-get-reply', object: null });
    expect(replies[1]).toEqual({ type: 'replica-put-reply', durable: false });
    expect(batchSizes).toEqual([20]);
    expect(transport.batchesSent).toBe(1);
    await transport.close();
  });

  it('closes a batch once its values pass 32 MiB', async () => {
    const transport = new UndiciTransport({ secret, connectionsPerPeer: 1 });
    batchSizes.length = 0;
    const big = Buffer.alloc(20 * 1024 * 1024, 1);
    const object = { clock: { a: 1 }, siblings: [{ dot: { node: 'a', counter: 1 }, value: big, contentType: 'x', lastModifiedMs: 1, tombstone: false }] };
    await Promise.all(
      [0, 1, 2].map((index) => transport.request(address, { type: 'replica-put', bucket: 'b', key: `big${index}`, object, mode: 'siblings', sync: false }, { timeoutMs: 20_000 })),
    );
    expect(batchSizes.length).toBeGreaterThanOrEqual(2);
    expect(batchSizes.reduce((sum, size) => sum + size, 0)).toBe(3);
    await transport.close();
  });

  it('rejects with KV_TIMEOUT when the peer takes the request but never answers', async () => {
    const transport = new UndiciTransport({ secret });
    holdReplies = true;
    try {
      await expect(transport.request(address, { type: 'replica-get', bucket: 'b', key: 'k' }, { timeoutMs: 200 })).rejects.toMatchObject({ code: 'KV_TIMEOUT' });
    } finally {
      holdReplies = false;
      await transport.close();
    }
  });

  it('rejects with KV_PEER_UNREACHABLE when nothing listens, and when the secret is refused', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadAddress = `127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const transport = new UndiciTransport({ secret });
    await expect(transport.request(deadAddress, { type: 'replica-get', bucket: 'b', key: 'k' }, { timeoutMs: 2000 })).rejects.toMatchObject({ code: 'KV_PEER_UNREACHABLE' });
    const wrong = new UndiciTransport({ secret: 'a-different-secret-0123456789' });
    await expect(wrong.request(address, { type: 'replica-get', bucket: 'b', key: 'k' }, { timeoutMs: 2000 })).rejects.toMatchObject({ code: 'KV_PEER_UNREACHABLE' });
    await transport.close();
    await wrong.close();
  });
});
