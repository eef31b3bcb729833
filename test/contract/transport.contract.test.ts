/**
 * One contract for the Transport port, run against the real peer transport (undici over
 * loopback HTTP) and the simulated network, so that what the engine relies on of the network
 * holds in simulation as it does in production: every reply reaches the request that asked,
 * a silent peer is a KV_TIMEOUT, an absent one or a closed transport a KV_PEER_UNREACHABLE.
 * The simulated network's own faults (a crashed sender hears nothing) are tested after it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/adapters/seeded-random.js';
import { SimulatedNetwork } from '../../src/adapters/simulated-transport.js';
import { UndiciTransport } from '../../src/adapters/undici-transport.js';
import { VirtualClock } from '../../src/adapters/virtual-clock.js';
import { decodeRequestBatch, encodeReplyBatch } from '../../src/core/wire/codec.js';
import type { PeerReply, PeerRequest } from '../../src/core/wire/messages.js';
import type { PeerHandler, Transport } from '../../src/ports/transport.js';

/** How a contract run gets peers and transports. */
interface TransportHarness {
  /** Starts a peer served by `handler`; answers its address. */
  serve(handler: PeerHandler): Promise<string>;
  /** An address nothing listens on. */
  deadAddress(): Promise<string>;
  /** A new transport to send with. */
  transport(): Transport;
  /** Awaits an operation, moving time as the implementation needs. */
  run<T>(operation: Promise<T>): Promise<T>;
  /** Stops every peer it started. */
  cleanup(): Promise<void>;
}

const secret = 'transport-contract-secret-0123456789';

/** A handler that answers a replica-get with the key it asked for inside a gossip reply, so each reply names its request. */
const echo: PeerHandler = async (message: PeerRequest): Promise<PeerReply> =>
  message.type === 'replica-get' ? { type: 'gossip-reply', state: { key: message.key } } : { type: 'replica-put-reply', durable: true };

function transportContract(implementation: string, harness: TransportHarness): void {
  describe(`${implementation} keeps the transport port's contract`, () => {
    const opened: Transport[] = [];
    const transport = (): Transport => {
      const created = harness.transport();
      opened.push(created);
      return created;
    };

    afterEach(async () => {
      for (const created of opened.splice(0)) await created.close();
      await harness.cleanup();
    });

    it("answers a request with the peer's reply, through the wire codec", async () => {
      const address = await harness.serve(async (message) =>
        message.type === 'replica-put'
          ? { type: 'replica-put-reply', durable: message.sync }
          : { type: 'replica-get-reply', object: { clock: { a: 2 }, siblings: [{ dot: { node: 'a', counter: 2 }, value: Buffer.from([0, 255, 7]), contentType: 'x/y', lastModifiedMs: 1_700_000_000_123, tombstone: false }] } },
      );
      const sender = transport();
      const read = await harness.run(sender.request(address, { type: 'replica-get', bucket: 'b', key: 'k' }, { timeoutMs: 5000 }));
      expect(read.type).toBe('replica-get-reply');
      const sibling = read.type === 'replica-get-reply' ? read.object?.siblings[0] : undefined;
      expect(Buffer.from(sibling?.value ?? []).toString('hex')).toBe('00ff07');
      expect(sibling?.lastModifiedMs).toBe(1_700_000_000_123);
      const object = { clock: {}, siblings: [] };
      const written = await harness.run(sender.request(address, { type: 'replica-put', bucket: 'b', key: 'k', object, mode: 'siblings', sync: true }, { timeoutMs: 5000 }));
      expect(written).toEqual({ type: 'replica-put-reply', durable: true });
    });

    it('gives each of many concurrent requests its own reply', async () => {
      const address = await harness.serve(echo);
      const sender = transport();
      const keys = Array.from({ length: 25 }, (_, index) => `key-${index}`);
      const replies = await harness.run(Promise.all(keys.map((key) => sender.request(address, { type: 'replica-get', bucket: 'b', key }, { timeoutMs: 5000 }))));
      expect(replies.map((reply) => (reply.type === 'gossip-reply' ? (reply.state as { key: string }).key : reply.type))).toEqual(keys);
    });

    it("passes a peer's error reply back as a reply, with its code", async () => {
      const address = await harness.serve(async () => ({ type: 'error', code: 'KV_UNAVAILABLE', message: 'busy' }));
      const reply = await harness.run(transport().request(address, { type: 'replica-get', bucket: 'b', key: 'k' }, { timeoutMs: 5000 }));
      expect(reply).toEqual({ type: 'error', code: 'KV_UNAVAILABLE', message: 'busy' });
    });

    it('rejects with KV_TIMEOUT when the peer takes the request and never answers', async () => {
      const address = await harness.serve(() => new Promise<PeerReply>(() => undefined));
      await expect(harness.run(transport().request(address, { type: 'replica-get', bucket: 'b', key: 'k' }, { timeoutMs: 200 }))).rejects.toMatchObject({ code: 'KV_TIMEOUT' });
    });

    it('rejects with KV_PEER_UNREACHABLE when nothing listens at the address', async () => {
      const address = await harness.deadAddress();
      await expect(harness.run(transport().request(address, { type: 'replica-get', bucket: 'b', key: 'k' }, { timeoutMs: 2000 }))).rejects.toMatchObject({ code: 'KV_PEER_UNREACHABLE' });
    });

    it('rejects with KV_PEER_UNREACHABLE once closed', async () => {
      const address = await harness.serve(echo);
      const sender = transport();
      await harness.run(sender.request(address, { type: 'replica-get', bucket: 'b', key: 'k' }, { timeoutMs: 5000 }));
      await sender.close();
      await expect(harness.run(sender.request(address, { type: 'replica-get', bucket: 'b', key: 'k' }, { timeoutMs: 5000 }))).rejects.toMatchObject({ code: 'KV_PEER_UNREACHABLE' });
    });
  });
}

/** The real transport against minimal loopback peers that speak the peer route's framing (a batch per POST, the secret in a header). */
function undiciHarness(): TransportHarness {
  const servers: Server[] = [];
  const listen = async (server: Server): Promise<string> => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  return {
    async serve(handler) {
      const server = createServer((request, response) => {
        const chunks: Buffer[] = [];
        request.on('data', (chunk: Buffer) => chunks.push(chunk));
        request.on('end', () => {
          if (request.headers['x-ringkv-secret'] !== secret) {
            response.writeHead(401).end();
            return;
          }
          Promise.all(decodeRequestBatch(Buffer.concat(chunks)).map((message) => handler(message)))
            .then((replies) => response.writeHead(200, { 'content-type': 'application/octet-stream' }).end(encodeReplyBatch(replies)))
            .catch((error: unknown) => response.writeHead(500).end(String(error)));
        });
      });
      servers.push(server);
      return listen(server);
    },
    async deadAddress() {
      const server = createServer();
      const address = await listen(server);
      await new Promise<void>((resolve) => server.close(() => resolve()));
      return address;
    },
    transport: () => new UndiciTransport({ secret }),
    run: (operation) => operation,
    async cleanup() {
      for (const server of servers.splice(0)) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
  };
}

/** The simulated network on a seeded scheduler; `run` advances virtual time until the operation settles. */
function simulatedHarness(): TransportHarness & { network(): SimulatedNetwork; scheduler(): VirtualClock } {
  let scheduler = new VirtualClock(1_700_000_000_000, { random: new SeededRandom(11) });
  let network = new SimulatedNetwork(scheduler, new SeededRandom(12));
  let peers = 0;
  return {
    network: () => network,
    scheduler: () => scheduler,
    async serve(handler) {
      peers += 1;
      const address = `10.9.0.${peers}:7000`;
      network.register(address, handler);
      return address;
    },
    async deadAddress() {
      return '10.9.255.255:7000';
    },
    transport: () => network.transportFor(`10.9.1.${peers}:7000`),
    async run<T>(operation: Promise<T>): Promise<T> {
      let settled = false;
      const tracked = operation.finally(() => {
        settled = true;
      });
      tracked.catch(() => undefined);
      for (let steps = 0; !settled && steps < 6000; steps++) await scheduler.advance(10);
      expect(settled, 'the request settles within a virtual minute').toBe(true);
      return tracked;
    },
    async cleanup() {
      scheduler = new VirtualClock(1_700_000_000_000, { random: new SeededRandom(11) });
      network = new SimulatedNetwork(scheduler, new SeededRandom(12));
    },
  };
}

transportContract('UndiciTransport (loopback HTTP)', undiciHarness());
transportContract('SimulatedNetwork transport', simulatedHarness());

describe('simulated transport: a crashed sender hears nothing', () => {
  it('after kill(), a request under way never settles, not even by its timeout, and new requests never leave', async () => {
    const scheduler = new VirtualClock(1_700_000_000_000, { random: new SeededRandom(3) });
    const network = new SimulatedNetwork(scheduler, new SeededRandom(4));
    const received: string[] = [];
    network.register('10.0.0.2:7000', async (message) => {
      received.push(message.type === 'replica-get' ? message.key : message.type);
      await scheduler.sleep(50);
      return { type: 'replica-get-reply', object: null };
    });
    const sender = network.transportFor('10.0.0.1:7000');
    let outcome = 'pending';
    sender.request('10.0.0.2:7000', { type: 'replica-get', bucket: 'b', key: 'before' }, { timeoutMs: 1000 }).then(
      () => (outcome = 'answered'),
      () => (outcome = 'rejected'),
    );
    await scheduler.advance(10);
    expect(received).toEqual(['before']);
    sender.kill();
    let later = 'pending';
    sender.request('10.0.0.2:7000', { type: 'replica-get', bucket: 'b', key: 'after' }, { timeoutMs: 1000 }).then(
      () => (later = 'answered'),
      () => (later = 'rejected'),
    );
    await scheduler.advance(5000);
    expect([outcome, later]).toEqual(['pending', 'pending']);
    expect(received).toEqual(['before']);
  });
});
