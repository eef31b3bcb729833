import { describe, expect, it } from 'vitest';
import type { PeerRequest } from '../../src/core/wire/messages.js';
import { decodeReply, encodeReply } from '../../src/core/wire/codec.js';
import { peerErrorReply } from '../../src/core/wire/error-reply.js';
import { PeerService, type PeerRequestType } from '../../src/engine/peer-service.js';
import type { Logger } from '../../src/ports/logger.js';
import { AssertionError } from '../../src/util/assert.js';
import { KvError } from '../../src/util/errors.js';
import { SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Goal: the peer service sends each peer request to the one role that registered its type,
 * refuses what no role serves with a clear error reply, answers a
 * handler's malformed-request refusal as an error reply, lets a removed node serve only what is
 * registered for it, and a real node registers a handler for every request type the wire has.
 */

function service(removed = false): { peers: PeerService; warnings: string[] } {
  const warnings: string[] = [];
  const logger: Logger = { debug: () => undefined, info: () => undefined, warn: (_object, message) => warnings.push(message ?? ''), error: () => undefined };
  const peers = new PeerService({
    selfId: 'self',
    transport: { request: () => Promise.reject(new Error('no network in this test')), close: async () => undefined },
    logger,
    peerTimeoutMs: 1000,
    addressOf: () => undefined,
    refusal: () => (removed ? new KvError('KV_NOT_READY', 'removed') : undefined),
  });
  return { peers, warnings };
}

const replicaGet: PeerRequest = { type: 'replica-get', bucket: 'b', key: 'k' };

describe('PeerService', () => {
  it("hands a forwarded write's refusal to the client whole: its code, message, details and Retry-After cross the wire", async () => {
    const refusals = [
      new KvError('KV_INSUFFICIENT_REPLICAS', 'only 1 of 2 replicas answered', { details: { required: 2, answered: 1, written: false } }),
      new KvError('KV_OVERLOADED', 'too many requests in flight', { retryAfterSeconds: 2 }),
      new KvError('KV_PRECONDITION_FAILED', 'the key changed', { details: { context: 'c3.x' } }),
    ];
    let next = 0;
    const peers = new PeerService({
      selfId: 'self',
      // The coordinating replica's refusal, as the framed transport carries it: encoded and decoded.
      transport: { request: async () => decodeReply(encodeReply(peerErrorReply(refusals[next++], () => undefined))), close: async () => undefined },
      logger: { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
      peerTimeoutMs: 1000,
      addressOf: () => '127.0.0.1:1',
      refusal: () => undefined,
    });
    const forward: PeerRequest = {
      type: 'forward-put',
      bucket: 'b',
      key: 'k',
      write: { kind: 'delete', context: { vector: {}, dots: [] } } as never,
      timeoutMs: 1000,
    };
    for (const refusal of refusals) {
      const thrown = await peers.send('coordinator', forward).then(
        () => undefined,
        (error: unknown) => error as KvError,
      );
      expect(thrown).toBeInstanceOf(KvError);
      expect({ code: thrown?.code, message: thrown?.message, details: thrown?.details, retryAfterSeconds: thrown?.retryAfterSeconds }).toEqual({
        code: refusal.code,
        message: refusal.message,
        details: refusal.details,
        retryAfterSeconds: refusal.retryAfterSeconds,
      });
    }
  });

  it('dispatches by type, and refuses a type no role registered', async () => {
    const { peers } = service();
    expect(await peers.handle(replicaGet)).toMatchObject({ type: 'error', code: 'KV_BAD_REQUEST' });
    peers.register('replica-get', async () => ({ type: 'replica-get-reply', object: null }));
    expect(await peers.handle(replicaGet)).toEqual({ type: 'replica-get-reply', object: null });
    expect(() => peers.register('replica-get', async () => ({ type: 'replica-get-reply', object: null }))).toThrow(AssertionError);
    // A request to this node itself is served here, without the network.
    expect(await peers.send('self', replicaGet)).toEqual({ type: 'replica-get-reply', object: null });
  });

  it('answers a malformed-request refusal of a handler as an error reply, and logs it', async () => {
    const { peers, warnings } = service();
    peers.register(
      'handoff-held',
      async (request) => {
        if (request.partitions.length === 0) throw new KvError('KV_BAD_REQUEST', 'needs a partition');
        return { type: 'handoff-held-reply', held: request.partitions };
      },
      { refusesMalformed: true },
    );
    expect(await peers.handle({ type: 'handoff-held', partitions: [3] })).toEqual({ type: 'handoff-held-reply', held: [3] });
    expect(await peers.handle({ type: 'handoff-held', partitions: [] })).toMatchObject({ type: 'error', code: 'KV_BAD_REQUEST', message: 'needs a partition' });
    expect(warnings).toContain('refused a malformed peer request');
  });

  it('a removed node serves only what is registered to be served when removed', async () => {
    const { peers } = service(true);
    peers.register('replica-get', async () => ({ type: 'replica-get-reply', object: null }));
    peers.register('swim-gossip', async () => ({ type: 'swim-done' }), { servesWhenRemoved: true });
    expect(await peers.handle(replicaGet)).toMatchObject({ type: 'error', code: 'KV_NOT_READY' });
    expect(await peers.handle({ type: 'swim-gossip', from: 'n2', updates: [] })).toEqual({ type: 'swim-done' });
  });

  it('a node registers a handler for every peer request type', async () => {
    // The compiler insists on every type here: a new message type fails to build until it is listed.
    const everyType: Record<PeerRequestType, true> = {
      'replica-get': true,
      'coordinate-put': true,
      'forward-put': true,
      'replica-put': true,
      'swim-ping': true,
      'swim-ping-req': true,
      'swim-gossip': true,
      'swim-digest': true,
      'swim-records': true,
      'cluster-state': true,
      'handoff-held': true,
      'handoff-fetch': true,
      'ae-keys': true,
      'ae-fetch': true,
      'ae-push': true,
      'list-keys': true,
      'dt-update': true,
      'ae-summary': true,
      'ae-leaves': true,
      'ae-digest': true,
      'ae-reap': true,
      'paxos-prepare': true,
      'paxos-propose': true,
      'paxos-commit': true,
      'paxos-keys': true,
      'watch-poll': true,
    };
    const cluster = await SimCluster.start(5, 1);
    try {
      const peers = cluster.members[0]!.node.peerService;
      expect(Object.keys(everyType).filter((type) => !peers.handles(type as PeerRequestType))).toEqual([]);
    } finally {
      await cluster.stop();
    }
  });
});
