import { type Server, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Client } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { partitionOf } from '../../src/core/keys.js';
import { ShardRouter, keyPartition, memberHeader } from '../../src/client/shard-router.js';

/**
 * Goal: the shard-aware client places keys on the ring exactly as the nodes do, and sends a
 * request for a key only down a connection that reaches the key's owner, even behind a shared
 * port where the kernel hands each new connection to one shard or another (README, "Shards").
 */

describe('keyPartition', () => {
  it('puts every key in the partition the nodes put it in', () => {
    for (const partitionCount of [1, 8, 64, 256, 1024]) {
      for (let index = 0; index < 500; index++) {
        const bucket = index % 3 === 0 ? 'bench' : `b${index % 7}`;
        const key = `key-${index}-${'é'.repeat(index % 4)}`;
        expect(keyPartition(bucket, key, partitionCount), `${bucket}/${key} of ${partitionCount}`).toBe(partitionOf(bucket, key, partitionCount));
      }
    }
  });
});

describe('ShardRouter behind a shared port', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise<void>((done) => (server === undefined ? done() : server.close(() => done())));
    server = undefined;
  });

  /**
   * An HTTP server standing for a node's shared port: its connections go to shard A and shard B
   * in turn (as reusePort hands them out), each answer names the shard, and requests other than
   * the /health probe are counted by the shard that served them.
   */
  async function sharedPort(): Promise<{ port: number; served: Map<string, number>; connections: () => number }> {
    let accepted = 0;
    const shardOf = new WeakMap<Socket, string>();
    const served = new Map<string, number>();
    const listening = createServer((request, response) => {
      const shard = shardOf.get(request.socket) as string;
      if (request.url !== '/health') served.set(shard, (served.get(shard) ?? 0) + 1);
      response.setHeader(memberHeader, shard);
      response.end('{}');
    });
    listening.on('connection', (socket: Socket) => {
      shardOf.set(socket, accepted % 2 === 0 ? 'B' : 'A');
      accepted++;
    });
    server = listening;
    await new Promise<void>((done) => listening.listen(0, '127.0.0.1', () => done()));
    return { port: (listening.address() as AddressInfo).port, served, connections: () => accepted };
  }

  it("sends a key's requests only down connections that reached its owner", async () => {
    const shared = await sharedPort();
    const router = new ShardRouter({
      // One partition, owned by A, whose address is the shared port.
      fetchRoutes: async () => ({ partitionCount: 1, owners: ['A'], members: [{ id: 'A', address: `127.0.0.1:${shared.port}`, status: 'up' }] }),
      originOf: (address) => `http://${address}`,
      dial: (origin) => new Client(origin),
      connectionsPerMember: 4,
      probeTimeoutMs: 60_000,
    });
    try {
      // 40 requests, up to 8 at once: more than the connections, so every connection is used.
      for (let batch = 0; batch < 5; batch++) {
        await Promise.all(
          Array.from({ length: 8 }, async (_, index) => {
            const route = await router.route('bucket', `key-${batch}-${index}`);
            expect(route?.member).toBe('A');
            const response = await route!.dispatcher.request({ method: 'GET', path: '/kv/bucket/key' });
            await response.body.dump();
            route!.settle(response.headers);
          }),
        );
      }
      expect(Object.fromEntries(shared.served)).toEqual({ A: 40 });
      // Every other connection reached B and was closed before it carried a request.
      expect(shared.connections()).toBeGreaterThanOrEqual(2);
    } finally {
      await router.close();
    }
  });

  it('asks a node without a ring at most once per refresh, not once per request', async () => {
    let reads = 0;
    let nowMs = 0;
    const router = new ShardRouter({
      fetchRoutes: async () => {
        reads++;
        throw new Error('the node has no ring yet');
      },
      originOf: (address) => `http://${address}`,
      dial: (origin) => new Client(origin),
      connectionsPerMember: 4,
      probeTimeoutMs: 60_000,
      refreshMs: 10_000,
      nowMs: () => nowMs,
    });
    try {
      for (let index = 0; index < 20; index++) expect(await router.route('bucket', `key-${index}`)).toBeUndefined();
      expect(reads).toBe(1);
      nowMs += 10_000;
      expect(await router.route('bucket', 'key')).toBeUndefined();
      expect(reads).toBe(2);
    } finally {
      await router.close();
    }
  });

  it('closes its connections to a member that left the ring, at the next ring read', async () => {
    const shared = await sharedPort();
    const open = new Set<Socket>();
    // Neither side closes an idle connection on its own, so only the router can have closed one.
    if (server !== undefined) server.keepAliveTimeout = 0;
    server?.on('connection', (socket: Socket) => {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
    });
    let nowMs = 0;
    let owner = { id: 'A', address: `127.0.0.1:${shared.port}`, status: 'up' };
    const router = new ShardRouter({
      fetchRoutes: async () => ({ partitionCount: 1, owners: [owner.id], members: [owner] }),
      originOf: (address) => `http://${address}`,
      dial: (origin) => new Client(origin, { keepAliveTimeout: 600_000, keepAliveMaxTimeout: 600_000 }),
      connectionsPerMember: 4,
      probeTimeoutMs: 60_000,
      refreshMs: 10_000,
      nowMs: () => nowMs,
    });
    try {
      const route = await router.route('bucket', 'key');
      expect(route?.member).toBe('A');
      const response = await route!.dispatcher.request({ method: 'GET', path: '/kv/bucket/key' });
      await response.body.dump();
      route!.settle(response.headers);
      expect(open.size).toBeGreaterThan(0);
      // A left; the ring now names C, elsewhere and down, so nothing routes and A's connections are of no use.
      owner = { id: 'C', address: '127.0.0.1:1', status: 'down' };
      nowMs += 10_000;
      await router.route('bucket', 'key');
      const deadline = Date.now() + 20_000;
      while (open.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(open.size, 'connections to the departed member still open').toBe(0);
    } finally {
      await router.close();
    }
  });

  it('routes nothing (the caller falls back to rotation) while the owner is not up', async () => {
    const router = new ShardRouter({
      fetchRoutes: async () => ({ partitionCount: 2, owners: ['A', 'B'], members: [{ id: 'A', address: '127.0.0.1:1', status: 'down' }] }),
      originOf: (address) => `http://${address}`,
      dial: (origin) => new Client(origin),
      connectionsPerMember: 4,
      probeTimeoutMs: 60_000,
    });
    try {
      for (let index = 0; index < 20; index++) expect(await router.route('bucket', `key-${index}`)).toBeUndefined();
    } finally {
      await router.close();
    }
  });
});
