import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { FramedPeerServer } from '../../src/adapters/framed-peer-server.js';
import { FramedTransport } from '../../src/adapters/framed-transport.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { SimulatedNetwork } from '../../src/sim/simulated-transport.js';
import { systemClock } from '../../src/adapters/system-clock.js';
import type { PeerReply, PeerRequest } from '../../src/core/wire/messages.js';
import type { VersionedObject } from '../../src/core/versioning/versioned-object.js';
import type { PeerHandler, Transport } from '../../src/ports/transport.js';
import { KvError } from '../../src/util/errors.js';
import { PeerService } from '../../src/engine/peer-service.js';
import type { Logger } from '../../src/ports/logger.js';

/**
 * Goal: every implementation of the Transport port behaves the same to the node that uses it.
 * The same cases run against the in-process simulated network and the framed transport (against
 * FramedPeerServer), the only two:
 * each message type and its reply survive the round trip, a handler's failure comes back as an
 * error reply, a silent peer gives KV_TIMEOUT, an absent one KV_PEER_UNREACHABLE, many requests
 * in flight each get their own reply, and (where the transport has one) a wrong cluster secret
 * is refused.
 */

const secret = 'contract-test-secret-0123456789';

/** A peer that serves `handler`, and how to stop it. */
interface ServedPeer {
  readonly address: string;
  stop(): Promise<void>;
}

/** One implementation under test. */
interface TransportFixture {
  readonly name: string;
  /** Whether peers authenticate with a cluster secret (the simulated network has none). */
  readonly authenticates: boolean;
  serve(handler: PeerHandler): Promise<ServedPeer>;
  transport(secretPresented?: string): Transport;
  /** An address where nothing listens. */
  deadAddress(): Promise<string>;
}

/** A loopback port that was free a moment ago and is closed now. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function simulatedFixture(): TransportFixture {
  const network = new SimulatedNetwork(systemClock, new SeededRandom(7));
  let served = 0;
  return {
    name: 'simulated',
    authenticates: false,
    serve: async (handler) => {
      served += 1;
      const address = `sim-peer-${served}:1`;
      network.register(address, handler);
      return { address, stop: async () => network.unregister(address) };
    },
    transport: () => network.transportFor('sim-client:1'),
    deadAddress: async () => 'sim-nobody:1',
  };
}

function framedFixture(): TransportFixture {
  return {
    name: 'framed',
    authenticates: true,
    serve: async (handler) => {
      const server = new FramedPeerServer({ handler, secret });
      const { port } = await server.listen('127.0.0.1', 0);
      return { address: `127.0.0.1:${port}`, stop: () => server.close() };
    },
    // The servers listen on the addresses the tests use, so the peer port is the address's own port.
    transport: (presented = secret) => new FramedTransport({ secret: presented, peerPortOffset: 0 }),
    deadAddress: async () => `127.0.0.1:${await closedPort()}`,
  };
}

const object = (text: string): VersionedObject => ({
  clock: { a: 2, b: 1 },
  siblings: [{ dot: { node: 'a', counter: 2 }, value: Buffer.from(text), contentType: 'text/plain', lastModifiedMs: 1_700_000_000_123, tombstone: false }],
});

/** A cluster view as gossip carries it. */
const swimNews = [
  { id: 'a', address: '127.0.0.1:1', generation: 1, version: 4, state: 'suspect' as const, lifecycle: 'up' as const, accuser: 'b', transfersDoneForRing: 0 },
];

/** One request of every type, with fields that make each distinguishable. */
const everyRequest: readonly PeerRequest[] = [
  { type: 'replica-get', bucket: 'b', key: 'get-me' },
  {
    type: 'coordinate-put',
    bucket: 'b',
    key: 'coordinated',
    write: {
      value: Buffer.from('new value'),
      contentType: 'text/plain',
      tombstone: false,
      nowMs: 1_700_000_000_000,
      context: { vector: { a: 1 }, dots: [{ node: 'b', counter: 3 }] },
    },
    mode: 'siblings',
    sync: true,
  },
  { type: 'replica-put', bucket: 'b', key: 'replicated', object: object('merged'), mode: 'lww', sync: false, hintFor: 'node-c' },
  { type: 'swim-ping', sequence: 7, from: 'b', target: 'a', updates: swimNews },
  { type: 'handoff-held', partitions: [7, 1, 2] },
];

/** Answers each request with a reply that depends on it, so both directions are checked. */
const echo: PeerHandler = async (request) => {
  switch (request.type) {
    case 'replica-get':
      return { type: 'replica-get-reply', object: request.key === 'absent' ? null : object(`${request.bucket}/${request.key}`) };
    case 'coordinate-put':
      return {
        type: 'coordinate-put-reply',
        object: object(Buffer.from(request.write.value).toString()),
        durable: request.sync,
        dot: { node: 'peer', counter: 9 },
      };
    case 'replica-put':
      return { type: 'replica-put-reply', durable: request.sync };
    case 'swim-ping':
      return { type: 'swim-ack', sequence: request.sequence, from: request.target, updates: request.updates };
    case 'handoff-held':
      return { type: 'handoff-held-reply', held: request.partitions.filter((partition) => partition !== 1) };
    default:
      // The page messages of handoff and anti-entropy have contract cases of their own in the codec fuzz tests.
      return { type: 'error', code: 'KV_BAD_REQUEST', message: `no echo for ${request.type}` };
  }
};

const expectedReplies: readonly PeerReply[] = [
  { type: 'replica-get-reply', object: object('b/get-me') },
  { type: 'coordinate-put-reply', object: object('new value'), durable: true, dot: { node: 'peer', counter: 9 } },
  { type: 'replica-put-reply', durable: false },
  { type: 'swim-ack', sequence: 7, from: 'a', updates: swimNews },
  { type: 'handoff-held-reply', held: [7, 2] },
];

/** Byte arrays compared by content, whatever Buffer or Uint8Array class they come back as. */
function plain(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_key, field: unknown) => (field instanceof Uint8Array ? `bytes:${Buffer.from(field).toString('hex')}` : field)),
  ) as unknown;
}

describe.each([simulatedFixture(), framedFixture()])('the Transport contract: $name', (fixture) => {
  const cleanups: (() => Promise<void>)[] = [];
  const peer = async (handler: PeerHandler): Promise<ServedPeer> => {
    const served = await fixture.serve(handler);
    cleanups.push(() => served.stop());
    return served;
  };
  const transport = (presented?: string): Transport => {
    const created = fixture.transport(presented);
    cleanups.push(() => created.close());
    return created;
  };

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('carries every request type to the handler and its reply back, unchanged', async () => {
    const received: PeerRequest[] = [];
    const { address } = await peer(async (request) => {
      received.push(request);
      return echo(request);
    });
    const client = transport();
    for (const [index, request] of everyRequest.entries()) {
      const reply = await client.request(address, request, { timeoutMs: 5_000 });
      expect(plain(reply)).toEqual(plain(expectedReplies[index]));
    }
    expect(plain(received)).toEqual(plain(everyRequest));
    expect(await client.request(address, { type: 'replica-get', bucket: 'b', key: 'absent' }, { timeoutMs: 5_000 })).toEqual({
      type: 'replica-get-reply',
      object: null,
    });
  });

  it("brings a handler's failure back as an error reply with its code", async () => {
    const { address } = await peer(async (request) => {
      if (request.type === 'replica-get') throw new KvError('KV_NOT_READY', 'not ready yet');
      return { type: 'error', code: 'KV_STORAGE', message: 'disk full' };
    });
    const client = transport();
    expect(await client.request(address, { type: 'replica-get', bucket: 'b', key: 'k' }, { timeoutMs: 5_000 })).toEqual({
      type: 'error',
      code: 'KV_NOT_READY',
      message: 'not ready yet',
    });
    expect(await client.request(address, { type: 'cluster-state' }, { timeoutMs: 5_000 })).toEqual({ type: 'error', code: 'KV_STORAGE', message: 'disk full' });
  });

  it('rejects with KV_TIMEOUT when the peer takes the request but never answers', async () => {
    let release: (() => void) | undefined;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    cleanups.push(async () => release?.());
    const { address } = await peer(async () => {
      await held;
      return { type: 'replica-put-reply', durable: false };
    });
    await expect(transport().request(address, { type: 'replica-get', bucket: 'b', key: 'k' }, { timeoutMs: 200 })).rejects.toMatchObject({
      code: 'KV_TIMEOUT',
    });
  });

  it('rejects with KV_PEER_UNREACHABLE when nothing listens at the address', async () => {
    const address = await fixture.deadAddress();
    await expect(transport().request(address, { type: 'replica-get', bucket: 'b', key: 'k' }, { timeoutMs: 5_000 })).rejects.toMatchObject({
      code: 'KV_PEER_UNREACHABLE',
    });
  });

  it('matches each of many concurrent requests with its own reply, whatever order the peer answers in', async () => {
    const count = 300;
    const waiting: (() => void)[] = [];
    const { address } = await peer(
      (request) =>
        new Promise<PeerReply>((resolve) => {
          const key = request.type === 'replica-get' ? request.key : '?';
          waiting.push(() => resolve({ type: 'replica-get-reply', object: object(key) }));
          // Once every request has arrived, answer them last first.
          if (waiting.length === count) for (const answer of waiting.reverse()) answer();
        }),
    );
    const client = transport();
    const replies = await Promise.all(
      Array.from({ length: count }, (_, index) => client.request(address, { type: 'replica-get', bucket: 'b', key: `key-${index}` }, { timeoutMs: 20_000 })),
    );
    replies.forEach((reply, index) => expect(plain(reply)).toEqual(plain({ type: 'replica-get-reply', object: object(`key-${index}`) })));
  });

  it.skipIf(!fixture.authenticates)('refuses a node that presents a different cluster secret, saying so', async () => {
    let handled = 0;
    const { address } = await peer(async (request) => {
      handled += 1;
      return echo(request);
    });
    const error = await transport('a-different-secret-0123456789')
      .request(address, { type: 'replica-get', bucket: 'b', key: 'k' }, { timeoutMs: 5_000 })
      .then(
        () => undefined,
        (rejection: unknown) => rejection,
      );
    expect(error).toMatchObject({ code: 'KV_PEER_UNREACHABLE' });
    expect((error as Error).message).toMatch(/secret/);
    expect(handled).toBe(0);
  });
});

/**
 * Goal: a handler's failure becomes the same peer reply on every path, because each one maps it
 * with `peerErrorReply` (src/core/wire/error-reply.ts): the framed peer server of production, the
 * simulated network, and a node's own PeerService.handle. So a simulation hears what a real
 * cluster would: a KvError keeps its code and message; any other error is KV_INTERNAL without
 * its message (which may hold internals), and is reported to the serving side, not to the peer.
 */
describe("a handler's failure: one reply on every path", () => {
  const failures: readonly { readonly name: string; readonly fail: () => never }[] = [
    {
      name: 'a KvError',
      fail: () => {
        throw new KvError('KV_NOT_READY', 'not ready yet; retry shortly');
      },
    },
    {
      name: 'an unexpected error',
      fail: () => {
        throw new TypeError('cannot read properties of undefined (internal detail)');
      },
    },
  ];
  const request: PeerRequest = { type: 'replica-get', bucket: 'b', key: 'k' };

  it.each(failures)('$name', async ({ fail }) => {
    const reported: { framed: unknown[]; node: unknown[] } = { framed: [], node: [] };
    // Both a handler that rejects and one that throws before it returns a promise.
    const rejecting: PeerHandler = async () => fail();
    const throwing: PeerHandler = () => fail();

    const replies: Record<string, PeerReply> = {};
    for (const [shape, handler] of [
      ['rejecting', rejecting],
      ['throwing', throwing],
    ] as const) {
      const server = new FramedPeerServer({ handler, secret, onError: (error) => reported.framed.push(error) });
      const { port } = await server.listen('127.0.0.1', 0);
      const framed = new FramedTransport({ secret, peerPortOffset: 0 });
      try {
        replies[`framed, ${shape}`] = await framed.request(`127.0.0.1:${port}`, request, { timeoutMs: 10_000 });
      } finally {
        await framed.close();
        await server.close();
      }
      const network = new SimulatedNetwork(systemClock, new SeededRandom(7));
      network.register('sim-peer:1', handler);
      replies[`simulated, ${shape}`] = await network.transportFor('sim-client:1').request('sim-peer:1', request, { timeoutMs: 10_000 });
    }
    const logger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: (object) => reported.node.push(object) };
    const peers = new PeerService({
      selfId: 'self',
      transport: unusedTransport,
      logger,
      peerTimeoutMs: 1000,
      addressOf: () => undefined,
      refusal: () => undefined,
    });
    peers.register('replica-get', async () => fail());
    replies['PeerService.handle'] = await peers.handle(request);

    const production = replies['framed, rejecting'];
    expect(production?.type).toBe('error');
    for (const [path, reply] of Object.entries(replies)) expect(reply, `the reply on the path ${path}`).toEqual(production);
    const unexpected = (production as { code: string }).code === 'KV_INTERNAL';
    if (unexpected) expect(JSON.stringify(production)).not.toMatch(/internal detail/);
    // The serving side hears of an unexpected error (to log it); a KvError is an answer, not an error.
    expect(reported.framed.length, 'unexpected errors the framed server reported').toBe(unexpected ? 2 : 0);
    expect(reported.node.length, 'unexpected errors the peer service logged').toBe(unexpected ? 1 : 0);
  });
});

/** A transport the peer service under test never uses. */
const unusedTransport: Transport = { request: () => Promise.reject(new Error('no network in this test')), close: async () => undefined };
