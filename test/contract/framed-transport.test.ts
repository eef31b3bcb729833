import { encodeDataKey } from '../../src/core/keys.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FramedPeerServer, type FramedPeerServerOptions } from '../../src/adapters/framed-peer-server.js';
import { FramedTransport, type FramedTransportOptions, laneOf, peerPortOf } from '../../src/adapters/framed-transport.js';
import { FrameDecoder, type Frame, decodeChallenge, encodeFrame, encodeHello, protocolVersions, frameTypes } from '../../src/core/wire/frames.js';
import { emptyContext } from '../../src/core/versioning/context.js';
import { requestMessages } from '../../src/core/wire/message-table.js';
import type { PeerReply, PeerRequest } from '../../src/core/wire/messages.js';
import type { PeerHandler } from '../../src/ports/transport.js';
import { ensureDebianPackage } from '../support/debian-packages.js';
import { makeTestCertificates } from '../support/test-certificates.js';

/**
 * Goal: what the framed transport promises beyond the Transport contract. Replica requests
 * travel on their own lane, so a large background request that is still being handled (and
 * holds its lane's byte cap) never delays them; requests past the queue bound are refused with
 * KV_OVERLOADED; frames over the cap are refused on either side; a reply that comes after its
 * request timed out is dropped; the handshake agrees a version or says why not, proves the
 * secret without sending it, and refuses a bad proof and a client that is not a ringkv node.
 * No assertion is on time: blocked handlers are released by the test.
 */

const secret = 'framed-test-secret-0123456789';

/** A promise the test resolves when it chooses. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Polls `condition` every few milliseconds until it holds, failing with `what` after a generous deadline. */
async function waitUntil(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function serve(handler: PeerHandler, options: Partial<FramedPeerServerOptions> = {}): Promise<{ server: FramedPeerServer; address: string }> {
  const server = new FramedPeerServer({ handler, secret, ...options });
  const { port } = await server.listen('127.0.0.1', 0);
  cleanups.push(() => server.close());
  return { server, address: `127.0.0.1:${port}` };
}

function client(options: Partial<FramedTransportOptions> = {}): FramedTransport {
  const transport = new FramedTransport({ secret, peerPortOffset: 0, ...options });
  cleanups.push(() => transport.close());
  return transport;
}

const get = (key: string): PeerRequest => ({ type: 'replica-get', bucket: 'b', key });
const found: PeerReply = { type: 'replica-get-reply', object: null };
const bigObject = (bytes: number) => ({
  clock: { a: 1 },
  siblings: [{ dot: { node: 'a', counter: 1 }, value: Buffer.alloc(bytes, 7), contentType: 'x', lastModifiedMs: 1, tombstone: false }],
});

/** Reads frames from a raw socket as they come. */
function frameReader(socket: Socket): { next: () => Promise<Frame | undefined> } {
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  socket.on('data', (chunk: Buffer) => {
    frames.push(...decoder.push(chunk));
    wake?.();
  });
  socket.on('close', () => {
    ended = true;
    wake?.();
  });
  socket.on('error', () => undefined);
  return {
    next: async () => {
      while (frames.length === 0 && !ended) await new Promise<void>((resolve) => (wake = resolve));
      return frames.shift();
    },
  };
}

/** A proxy to `address` that records what the client sends through it. */
async function recordingProxy(address: string): Promise<{ address: string; sentByClient: Buffer[] }> {
  const target = Number(address.split(':')[1]);
  const sentByClient: Buffer[] = [];
  const proxy = createServer((incoming) => {
    const outgoing = connect({ host: '127.0.0.1', port: target });
    incoming.on('data', (chunk: Buffer) => {
      sentByClient.push(Buffer.from(chunk));
      outgoing.write(chunk);
    });
    outgoing.on('data', (chunk: Buffer) => incoming.write(chunk));
    incoming.on('error', () => outgoing.destroy());
    outgoing.on('error', () => incoming.destroy());
    incoming.on('close', () => outgoing.destroy());
    outgoing.on('close', () => incoming.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
  return { address: `127.0.0.1:${(proxy.address() as AddressInfo).port}`, sentByClient };
}

describe('the framed peer transport', () => {
  it('puts replica reads and writes and SWIM probes on their own lane and everything else on the background lane', () => {
    expect(laneOf(get('k'))).toBe('replica');
    expect(laneOf({ type: 'replica-put', bucket: 'b', key: 'k', object: bigObject(1), mode: 'siblings', sync: false })).toBe('replica');
    expect(laneOf({ type: 'swim-ping', sequence: 1, from: 'n1', target: 'n2', updates: [] })).toBe('replica');
    expect(laneOf({ type: 'swim-gossip', from: 'n1', updates: [] })).toBe('background');
    expect(laneOf({ type: 'cluster-state' })).toBe('background');
    expect(
      laneOf({
        type: 'forward-put',
        bucket: 'b',
        key: 'k',
        write: { value: Buffer.from('v'), contentType: 'text/plain', tombstone: false, nowMs: 1, context: emptyContext },
        timeoutMs: 100,
      }),
    ).toBe('replica');
    expect(laneOf({ type: 'handoff-held', partitions: [1] })).toBe('background');
    expect(peerPortOf('10.0.0.5:17101')).toEqual({ host: '10.0.0.5', port: 18101 });
    expect(() => peerPortOf('10.0.0.5:65000')).toThrow(/no peer port/);
  });

  it('dials a peer at its HTTP port + peerPortOffset, and a --peer-map override exactly as given', async () => {
    const { address } = await serve(async () => found);
    const port = Number(address.split(':')[1]);
    // The server plays a node whose HTTP port is 1000 below it.
    expect(await client({ peerPortOffset: 1000 }).request(`127.0.0.1:${port - 1000}`, get('k'), { timeoutMs: 10_000 })).toEqual(found);
    const mapped = client({ peerPortOffset: 1000, peerDialOverrides: { 'node-b.example:17101': address } });
    expect(await mapped.request('node-b.example:17101', get('k'), { timeoutMs: 10_000 })).toEqual(found);
  });

  it('answers a replica request while a large background request still holds its lane', async () => {
    const backgroundReleased = gate();
    const seen: string[] = [];
    const { address } = await serve(async (request) => {
      const name = request.type === 'ae-push' ? (request.partition === 1 ? 'large' : 'behind') : request.type;
      seen.push(name);
      if (request.type === 'ae-push') {
        await backgroundReleased.promise;
        return { type: 'ae-push-reply', repaired: request.partition };
      }
      return found;
    });
    // A cap of 1 MiB in flight per lane: the 2.4 MB anti-entropy push (40 objects of 60,000 bytes) fills the background lane on its own.
    const transport = client({ maxInFlightBytesPerLane: 1024 * 1024 });
    const items = Array.from({ length: 40 }, (_, index) => ({ dataKey: encodeDataKey('b', `key-${index}`), object: bigObject(60_000) }));
    const large = transport.request(address, { type: 'ae-push', partition: 1, items }, { timeoutMs: 60_000 });
    await waitUntil('the large background request to reach its handler', () => seen.includes('large'));
    const queuedBehind = transport.request(address, { type: 'ae-push', partition: 2, items: [] }, { timeoutMs: 60_000 });

    // Were it on the background lane, this would wait behind the cap and fail with KV_TIMEOUT.
    expect(await transport.request(address, get('k'), { timeoutMs: 10_000 })).toEqual(found);
    // The replica request went through while the background lane was still full and blocked.
    expect(seen).toEqual(['large', 'replica-get']);
    expect(transport.connectionOf(address, 'background')?.bytesInFlight).toBeGreaterThan(2 * 1024 * 1024);

    backgroundReleased.open();
    expect(await large).toEqual({ type: 'ae-push-reply', repaired: 1 });
    expect(await queuedBehind).toEqual({ type: 'ae-push-reply', repaired: 2 });
    expect(seen).toEqual(['large', 'replica-get', 'behind']);
  });

  it('answers a reply the table cannot write as an error reply, and the connection goes on serving', async () => {
    // A handler's bug: a cluster state outside the binary layout. Before, the reply was never sent and the request timed out.
    const { address } = await serve(async (request) =>
      request.type === 'cluster-state' ? { type: 'cluster-state-reply', from: 'n1', state: { members: 'nope' } } : found,
    );
    const transport = client();
    expect(await transport.request(address, { type: 'cluster-state' }, { timeoutMs: 5_000 })).toMatchObject({
      type: 'error',
      code: 'KV_INTERNAL',
      message: expect.stringMatching(/cluster state outside its layout/),
    });
    expect(await transport.request(address, { type: 'cluster-state' }, { timeoutMs: 5_000 })).toMatchObject({ type: 'error' });
    expect(await transport.request(address, get('k'), { timeoutMs: 5_000 })).toEqual(found);
  });

  it('refuses requests past the queue bound with KV_OVERLOADED and serves the rest', async () => {
    const { address } = await serve(async () => found);
    const transport = client({ maxQueuedRequestsPerLane: 2 });
    // All four are made before the connection is up, so all wait in the queue.
    const outcomes = await Promise.all(
      [1, 2, 3, 4].map((index) =>
        transport.request(address, get(`k${index}`), { timeoutMs: 10_000 }).then(
          () => 'ok',
          (error: { code?: string }) => error.code,
        ),
      ),
    );
    expect(outcomes).toEqual(['ok', 'ok', 'KV_OVERLOADED', 'KV_OVERLOADED']);
  });

  it('keeps at most maxInFlightRequestsPerLane requests on the wire and sends the rest as answers come', async () => {
    const release = gate();
    let seen = 0;
    const { address } = await serve(async () => {
      seen += 1;
      await release.promise;
      return found;
    });
    const transport = client({ maxInFlightRequestsPerLane: 2 });
    const replies = Promise.all([1, 2, 3].map((index) => transport.request(address, get(`k${index}`), { timeoutMs: 10_000 })));
    await waitUntil('two requests to reach the handler', () => seen >= 2);
    expect(transport.connectionOf(address, 'replica')?.requestsInFlight).toBe(2);
    release.open();
    expect(await replies).toEqual([found, found, found]);
    expect(seen).toBe(3);
  });

  it('refuses to send a frame over its own cap and keeps the connection', async () => {
    const { address } = await serve(async () => ({ type: 'replica-put-reply', durable: false }));
    const transport = client({ maxFrameBytes: 1024 * 1024 });
    await expect(
      transport.request(
        address,
        { type: 'replica-put', bucket: 'b', key: 'k', object: bigObject(2 * 1024 * 1024), mode: 'siblings', sync: false },
        { timeoutMs: 10_000 },
      ),
    ).rejects.toMatchObject({
      code: 'KV_VALUE_TOO_LARGE',
    });
    expect(await transport.request(address, get('k'), { timeoutMs: 10_000 })).toEqual({ type: 'replica-put-reply', durable: false });
    expect(transport.connectionsOpened).toBe(1);
  });

  it('answers a frame over the server cap with an error reply, closes that connection, and the next request reconnects', async () => {
    const { address } = await serve(async () => ({ type: 'replica-put-reply', durable: true }), { maxFrameBytes: 1024 * 1024 });
    const transport = client();
    const reply = await transport.request(
      address,
      { type: 'replica-put', bucket: 'b', key: 'k', object: bigObject(2 * 1024 * 1024), mode: 'siblings', sync: false },
      { timeoutMs: 10_000 },
    );
    expect(reply).toMatchObject({ type: 'error', code: 'KV_VALUE_TOO_LARGE' });
    await waitUntil('the refused connection to close', () => transport.connectionOf(address, 'replica') === undefined);
    expect(
      await transport.request(
        address,
        { type: 'replica-put', bucket: 'b', key: 'k', object: bigObject(10), mode: 'siblings', sync: false },
        { timeoutMs: 10_000 },
      ),
    ).toEqual({
      type: 'replica-put-reply',
      durable: true,
    });
    expect(transport.connectionsOpened).toBe(2);
  });

  it('drops the late reply of a timed-out request and keeps matching the others on the same connection', async () => {
    const slow = gate();
    let slowAnswered = false;
    const { address } = await serve(async (request) => {
      if (request.type === 'replica-get' && request.key === 'slow') {
        await slow.promise;
        slowAnswered = true;
        return { type: 'replica-get-reply', object: bigObject(3) };
      }
      return found;
    });
    const transport = client();
    // The connection is up before the slow request: its 100 ms must not be spent connecting on a loaded machine.
    expect(await transport.request(address, get('first'), { timeoutMs: 10_000 })).toEqual(found);
    await expect(transport.request(address, get('slow'), { timeoutMs: 100 })).rejects.toMatchObject({ code: 'KV_TIMEOUT' });
    slow.open();
    await waitUntil('the slow handler to answer', () => slowAnswered);
    // The late reply reaches the client before this request's (one TCP stream) and must not be taken for it.
    expect(await transport.request(address, get('fast'), { timeoutMs: 10_000 })).toEqual(found);
    expect(transport.connectionsOpened).toBe(1);
  });

  it('says there is no common protocol version when the ranges do not meet', async () => {
    const { address, server } = await serve(async () => found);
    const transport = client({ versions: { min: protocolVersions.max + 1, max: protocolVersions.max + 2 } });
    await expect(transport.request(address, get('k'), { timeoutMs: 10_000 })).rejects.toMatchObject({
      code: 'KV_PEER_UNREACHABLE',
      message: expect.stringMatching(/no common protocol version/),
    });
    expect(server.refusedConnections).toBe(1);
  });

  it('follows the version policy of docs/WIRE.md: the next release still talks to this one, a build from before SWIM membership is refused', async () => {
    const { min, max } = protocolVersions;
    // The next release speaks this build's version and its own (max..max+1): they meet at this build's.
    const { address: newer } = await serve(async () => found, { versions: { min: max, max: max + 1 } });
    const thisBuild = client();
    expect(await thisBuild.request(newer, get('k'), { timeoutMs: 10_000 })).toEqual(found);
    expect(thisBuild.connectionOf(newer, 'replica')?.protocolVersion).toBe(max);
    // A build of every version before this one (1..2: batches, JSON gossip; 3: the control message; 4: whole-view gossip) against this
    // one: refused at the handshake, naming both ranges, and the secret is in none of the bytes either way.
    const { address: current } = await serve(async () => found);
    const proxy = await recordingProxy(current);
    const older = client({ versions: { min: 1, max: min - 1 } });
    await expect(older.request(proxy.address, get('k'), { timeoutMs: 10_000 })).rejects.toMatchObject({
      code: 'KV_PEER_UNREACHABLE',
      message: expect.stringMatching(new RegExp(`no common protocol version: this node speaks ${min}\\.\\.${max}, the peer 1\\.\\.${min - 1}`)),
    });
    const sent = Buffer.concat(proxy.sentByClient);
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.includes(Buffer.from(secret))).toBe(false);
  });

  it('refuses a client whose proof is wrong, one that is not a ringkv node, and a large frame before the handshake', async () => {
    let handled = 0;
    const { address, server } = await serve(async () => {
      handled += 1;
      return found;
    });
    const [host, port] = [address.split(':')[0] as string, Number(address.split(':')[1])];

    const impostor = connect({ host, port });
    const frames = frameReader(impostor);
    impostor.write(encodeFrame(frameTypes.hello, 0, 1000, encodeHello({ versions: protocolVersions, clientNonce: Buffer.alloc(32, 5) })));
    const challenge = await frames.next();
    expect(challenge?.type).toBe(frameTypes.challenge);
    expect(decodeChallenge(challenge?.payload ?? Buffer.alloc(0)).chosenVersion).toBe(protocolVersions.max);
    impostor.write(encodeFrame(frameTypes.proof, 0, 1000, Buffer.alloc(32)));
    // Pipelined behind the bad proof: it must never reach the handler.
    impostor.write(encodeFrame(frameTypes.request, 1, 1000, Buffer.from([1, 1, 1, 1, 98, 1, 107])));
    const refusal = await frames.next();
    expect(refusal?.type).toBe(frameTypes.refused);
    expect(refusal?.payload.toString('utf8')).toMatch(/peer refused the cluster secret/);
    expect(await frames.next()).toBeUndefined();

    const browser = connect({ host, port });
    const answers = frameReader(browser);
    browser.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await answers.next())?.type).toBe(frameTypes.refused);
    expect(await answers.next()).toBeUndefined();

    // Before the handshake only small frames are read: a stranger cannot make the node buffer megabytes.
    const hoarder = connect({ host, port });
    const hoarded = frameReader(hoarder);
    hoarder.write(encodeFrame(frameTypes.hello, 0, 1000, Buffer.alloc(100 * 1024)).subarray(0, 13));
    const tooLarge = await hoarded.next();
    expect(tooLarge?.type).toBe(frameTypes.refused);
    expect(tooLarge?.payload.toString('utf8')).toMatch(/over the cap of 4096 bytes/);

    expect(handled).toBe(0);
    expect(server.refusedConnections).toBe(3);
  });

  it('keeps serving real peers while strangers hold connections open without a handshake (issue 18 item 11)', async () => {
    const limits = { maxConnections: 64, maxHandshakingConnections: 32, maxHandshakingConnectionsPerSource: 16 };
    const { address, server } = await serve(async () => found, limits);
    const port = Number(address.split(':')[1]);
    // As many connections as the server takes in all, from four other loopback addresses, none of which says a word.
    const strangers: Socket[] = [];
    cleanups.push(() => {
      for (const socket of strangers) socket.destroy();
    });
    let connected = 0;
    for (let index = 0; index < limits.maxConnections; index++) {
      const socket = connect({ host: '127.0.0.1', port, localAddress: `127.0.0.${2 + (index % 4)}` }, () => {
        connected += 1;
      });
      socket.on('error', () => undefined);
      strangers.push(socket);
    }
    await waitUntil(`the ${limits.maxConnections} strangers to be connected (${connected} are)`, () => connected === limits.maxConnections);
    // A real peer (from 127.0.0.1, like the strangers' own loopback) still connects and is served on both lanes.
    const transport = client();
    expect(await transport.request(address, get('k'), { timeoutMs: 10_000 })).toEqual(found);
    expect(await transport.request(address, { type: 'handoff-held', partitions: [1] }, { timeoutMs: 10_000 })).toEqual(found);
    expect(transport.connectionsOpened).toBe(2);
    // The strangers never held more than the handshake bound.
    expect(server.handshakingConnections).toBeLessThanOrEqual(limits.maxHandshakingConnections);
  });

  it('never sends the cluster secret: the handshake is a challenge and response', async () => {
    const { address } = await serve(async () => found);
    const proxy = await recordingProxy(address);
    const transport = client();
    expect(await transport.request(proxy.address, get('k'), { timeoutMs: 10_000 })).toEqual(found);
    await transport.close();
    const wire = Buffer.concat(proxy.sentByClient);
    expect(wire.length).toBeGreaterThan(0);
    expect(wire.includes(Buffer.from(secret))).toBe(false);
  });

  it('sends no request to a server that accepts without proving the secret', async () => {
    const received: number[] = [];
    const impostor = createServer((socket) => {
      const frames = frameReader(socket);
      void (async () => {
        for (let frame = await frames.next(); frame !== undefined; frame = await frames.next()) {
          received.push(frame.type);
          // It cannot compute a challenge proof, so it skips the challenge and says accepted.
          if (frame.type === frameTypes.hello) socket.write(encodeFrame(frameTypes.accepted, 0, 0));
        }
      })();
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => impostor.close(() => resolve())));
    const transport = client();
    await expect(transport.request(`127.0.0.1:${(impostor.address() as AddressInfo).port}`, get('k'), { timeoutMs: 10_000 })).rejects.toMatchObject({
      code: 'KV_PEER_UNREACHABLE',
      message: expect.stringMatching(/without proving the cluster secret/),
    });
    await transport.close();
    await waitUntil('the impostor to see the connection close', () => received.length > 0);
    expect(received).not.toContain(frameTypes.request);
  });

  it('tries nothing else when the peer port refuses: the request fails, saying where it looked, and the secret goes nowhere', async () => {
    // The peer's address (as gossip knows it) is a socket that records whatever reaches it; its peer port refuses.
    let connections = 0;
    const recorded: Buffer[] = [];
    const recorder = createServer((socket) => {
      connections += 1;
      socket.on('data', (chunk: Buffer) => recorded.push(Buffer.from(chunk)));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => recorder.close(() => resolve())));
    const address = `127.0.0.1:${(recorder.address() as AddressInfo).port}`;
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const deadPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const transport = client({ resolvePeer: () => ({ host: '127.0.0.1', port: deadPort }) });
    for (const request of [get('k'), { type: 'cluster-state' } as PeerRequest]) {
      await expect(transport.request(address, request, { timeoutMs: 10_000 })).rejects.toMatchObject({
        code: 'KV_PEER_UNREACHABLE',
        message: expect.stringMatching(/refused: is a ringkv node running there, with the same peerPortOffset\?/),
      });
    }
    // One connection per lane was tried, on the peer port only.
    expect(transport.connectionsOpened).toBe(2);
    expect(connections).toBe(0);
    expect(Buffer.concat(recorded).includes(Buffer.from(secret))).toBe(false);
  });

  it('carries one message per frame, its tag first: cluster-state and handoff-held in binary (tags 68 and 42), read back the same', async () => {
    const state = { ring: null, bucketProperties: { b: { nVal: 2 } }, bucketPropertiesVersion: 3 };
    const seen: PeerRequest[] = [];
    const handler: PeerHandler = async (request) => {
      seen.push(request);
      return request.type === 'cluster-state' ? { type: 'cluster-state-reply', from: 'n1', state } : { type: 'handoff-held-reply', held: [1, 2] };
    };
    const { address } = await serve(handler);
    const proxy = await recordingProxy(address);
    const transport = client();
    const fetched = await transport.request(proxy.address, { type: 'cluster-state' }, { timeoutMs: 10_000 });
    const held = await transport.request(proxy.address, { type: 'handoff-held', partitions: [1, 2, 3] }, { timeoutMs: 10_000 });
    expect(fetched).toEqual({ type: 'cluster-state-reply', from: 'n1', state });
    expect(held).toEqual({ type: 'handoff-held-reply', held: [1, 2] });
    expect(seen).toEqual([{ type: 'cluster-state' }, { type: 'handoff-held', partitions: [1, 2, 3] }]);
    expect(transport.connectionOf(proxy.address, 'background')?.protocolVersion).toBe(protocolVersions.max);
    await transport.close();
    const decoder = new FrameDecoder();
    const tags = decoder
      .push(Buffer.concat(proxy.sentByClient))
      .filter((frame) => frame.type === frameTypes.request)
      .map((frame) => frame.payload[0]);
    expect(tags).toEqual([requestMessages['cluster-state'].tag, requestMessages['handoff-held'].tag]);
    expect(tags).toEqual([68, 42]);
  });
});

const opensslMissing = ensureDebianPackage('/usr/bin/openssl', 'openssl');

describe.skipIf(opensslMissing !== undefined)('the framed peer transport over TLS', () => {
  const folder = mkdtempSync(join(tmpdir(), 'ringkv-framed-tls-'));
  cleanups.push(() => rmSync(folder, { recursive: true, force: true }));

  /** A throwaway CA and a certificate for 127.0.0.1 signed by it (test/support/test-certificates.ts). */
  function certificates(): { ca: Buffer; cert: Buffer; key: Buffer } {
    const files = makeTestCertificates(folder);
    return { ca: readFileSync(files.caFile), cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
  }

  it('round-trips requests on both lanes over TLS verified against the cluster CA, and refuses a peer it cannot verify', async () => {
    const { ca, cert, key } = certificates();
    const state = { ring: null, bucketProperties: { tls: { nVal: 3 } }, bucketPropertiesVersion: 1 };
    const { address } = await serve(async (request) => (request.type === 'cluster-state' ? { type: 'cluster-state-reply', from: 'n1', state } : found), {
      tls: { key, cert },
    });
    const transport = client({ tls: { ca } });
    expect(await transport.request(address, get('k'), { timeoutMs: 10_000 })).toEqual(found);
    expect(await transport.request(address, { type: 'cluster-state' }, { timeoutMs: 10_000 })).toEqual({ type: 'cluster-state-reply', from: 'n1', state });
    // Without the CA the server's certificate does not verify (the system store does not know it).
    await expect(client({ tls: {} }).request(address, get('k'), { timeoutMs: 10_000 })).rejects.toMatchObject({ code: 'KV_PEER_UNREACHABLE' });
    // A plain-TCP client does not get past the TLS listener either.
    await expect(client().request(address, get('k'), { timeoutMs: 10_000 })).rejects.toMatchObject({ code: 'KV_PEER_UNREACHABLE' });
  });
});
