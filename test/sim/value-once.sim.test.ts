import { afterEach, describe, expect, it } from 'vitest';
import { partitionOf } from '../../src/core/keys.js';
import { preferenceList } from '../../src/core/ring/ring.js';
import { encodeReply, encodeRequest } from '../../src/core/wire/codec.js';
import { liveSiblings } from '../../src/core/versioning/versioned-object.js';
import { SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Goal: a client write's value crosses the network once per replica that stores it, also when
 * the entry node is not one of the key's replicas. The entry node hands the whole write to the
 * coordinating replica (forward-put), which replicates it from there; the value never comes back
 * to the entry node in a reply (entry -> coordinator -> entry -> replicas sent it twice more).
 * Every peer message is encoded as the framed transport would encode it and searched for the
 * value's bytes. Seeds replay with SIM_SEED.
 */

const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [1, 2, 3];

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('simulation: the value crosses the network once per replica', () => {
  it.each(seeds)('seed %i: a write entering at a node that is no replica of its key', async (seed) => {
    cluster = await SimCluster.start(seed, 4, { antiEntropy: { enabled: false } });
    const sim = cluster;
    const entry = sim.members[0]!;
    const ring = entry.node.gossiper.ring!;
    const key = Array.from({ length: 500 }, (_, index) => `k${index}`).find(
      (candidate) => !preferenceList(ring, partitionOf('b', candidate, ring.partitionCount), 3).includes(entry.nodeId),
    )!;
    const value = Buffer.from(`value-once-${seed}-`.padEnd(64, 'x'));

    const carried: string[] = [];
    for (const member of sim.members) {
      sim.network.register(member.address, async (request) => {
        if (encodeRequest(request).includes(value)) carried.push(`${request.type} to ${member.nodeId}`);
        const reply = await member.node.handlePeer(request);
        if (encodeReply(reply).includes(value)) carried.push(`${reply.type} from ${member.nodeId}`);
        return reply;
      });
    }
    await sim.drive(entry.node.put({ bucket: 'b', key, value, contentType: 'text/plain', context: undefined, options: { w: 'all' } }));

    expect(carried, `seed ${seed}: the messages that carried the value`).toHaveLength(3);
    for (const member of sim.members.filter((candidate) => candidate !== entry)) {
      const stored = await member.node.getLocal('b', key);
      expect(
        stored === undefined ? [] : liveSiblings(stored).map((sibling) => Buffer.from(sibling.value).toString()),
        `seed ${seed}: ${member.nodeId}'s copy`,
      ).toEqual([value.toString()]);
    }
  });
});
