import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeDataKey, partitionOf } from '../../src/core/keys.js';
import type { PeerReply, PeerRequest } from '../../src/core/wire/messages.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';
import { RecordingStorage } from '../../src/sim/recording-storage.js';

/**
 * Goal: a node checks every handoff and anti-entropy request against its schema and its ring
 * before the request touches state. A bad one (wrong shapes, partitions outside the ring, keys
 * outside the partition named) gets an error reply: the handler never throws, never writes,
 * and never answers with more than a bounded page (an out-of-range `ae-keys` used to scan the
 * whole database into one reply).
 */

let cluster: SimCluster;
let node: SimMember;
let storage: RecordingStorage;
const partitionCount = 32;

beforeAll(async () => {
  cluster = await SimCluster.start(7100, 1, { partitionCount, antiEntropy: { enabled: false } }, { storage: () => (storage = new RecordingStorage()) });
  node = cluster.members[0] as SimMember;
  for (let index = 0; index < 50; index++) {
    await cluster.drive(
      node.node.put({ bucket: 'b', key: `k${index}`, value: Buffer.from('v'), contentType: 'text/plain', context: undefined, options: { w: 1 } }),
    );
  }
});

afterAll(async () => {
  await cluster.stop();
});

/** Runs a request straight into the node's peer handler; a throw fails the test with what was sent. */
async function handle(request: PeerRequest): Promise<PeerReply> {
  try {
    return await node.node.handlePeer(request);
  } catch (error) {
    throw new Error(`handlePeer threw ${String(error)} for ${String(request.type)}`, { cause: error });
  }
}

describe('peer request validation', () => {
  it('an ae-keys request with an out-of-range partition is refused, not answered with the whole database', async () => {
    for (const partition of [partitionCount, 9999, 2 ** 20]) {
      const binary = await handle({ type: 'ae-keys', partition, leaves: [0, 1, 2], items: [] });
      expect(binary.type, `ae-keys of partition ${partition}`).toBe('error');
    }
  });

  it('binary handoff and anti-entropy requests outside the ring or their partition are refused without a write', async () => {
    const keyOf = (index: number): Buffer => encodeDataKey('b', `k${index}`);
    const inPartition = partitionOf('b', 'k0', partitionCount);
    const otherKey = Array.from({ length: 50 }, (_, index) => index).find((index) => partitionOf('b', `k${index}`, partitionCount) !== inPartition) as number;
    const object = (await node.node.getLocal('b', 'k0'))!;
    const bad: PeerRequest[] = [
      { type: 'handoff-fetch', partition: partitionCount, after: null, maxKeys: 10, maxBytes: 1024 },
      { type: 'handoff-fetch', partition: inPartition, after: keyOf(otherKey), maxKeys: 10, maxBytes: 1024 },
      { type: 'ae-fetch', partition: partitionCount + 3, keys: [keyOf(0)], maxBytes: 1024 },
      { type: 'ae-fetch', partition: inPartition, keys: [keyOf(otherKey)], maxBytes: 1024 },
      { type: 'ae-push', partition: 40_000, items: [{ dataKey: keyOf(0), object }] },
      { type: 'ae-push', partition: inPartition, items: [{ dataKey: keyOf(otherKey), object }] },
      { type: 'ae-keys', partition: inPartition, leaves: [0], items: [{ dataKey: keyOf(otherKey), digest: '0' }] },
      { type: 'handoff-held', partitions: [0, partitionCount] },
    ];
    for (const request of bad) {
      const writes = storage.writes;
      const reply = await handle(request);
      expect(reply.type, JSON.stringify(request.type)).toBe('error');
      expect(reply.type === 'error' && reply.code).toBe('KV_BAD_REQUEST');
      expect(storage.writes).toBe(writes);
    }
  });

  it('a page is bounded by bytes, but always carries one object', async () => {
    const partition = partitionOf('b', 'k0', partitionCount);
    const reply = await handle({ type: 'handoff-fetch', partition, after: null, maxKeys: 10_000, maxBytes: 1 });
    expect(reply.type).toBe('object-page');
    expect(reply.type === 'object-page' && reply.items.length).toBe(1);
    expect(reply.type === 'object-page' && reply.done).toBe(false);
  });
});
