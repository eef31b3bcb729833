import { describe, expect, it } from 'vitest';
import { encodeAcceptorState } from '../../src/core/consensus/acceptor-codec.js';
import { encodeConsistentValue } from '../../src/core/consensus/consistent-value.js';
import { encodeDataKey } from '../../src/core/keys.js';
import { encodeLeaseRecord, grantedLease, leaseBucket } from '../../src/core/leases/lease-record.js';
import { createRing } from '../../src/core/ring/ring.js';
import type { BucketProperties } from '../../src/config/schema.js';
import { AcceptorStore } from '../../src/engine/acceptor-store.js';
import { LeaseScanner, leaseWalkPartitionsPerStep } from '../../src/engine/lease-scanner.js';
import { silentLogger } from '../../src/ports/logger.js';
import { MemoryStorage } from '../../src/sim/memory-storage.js';

/**
 * Goal (docs/CONSENSUS.md, "Leases"; issue 22's "lease expiry scan up to ~50 s late at 100k
 * consistent keys"): the lease sweeper finds a lease record its acceptor wrote at its next step,
 * however many consistent keys of other buckets the node holds, and still finds, by its walk over
 * the consistent keys a majority of replicas lists, one written before this run; a deleted record
 * is forgotten; a listed record this node holds no value of (a promise only: the others decided
 * it) is read as decided once a pass of the walk, not at every round. Each step reads a
 * bounded number of entries. The known lease ids are bounded (`maxKnownLeases`): beyond the bound
 * a lease is still reported, once a pass of the walk instead of at every round, in every cycle.
 */

const limit = 64;
const bucketProperties = (): BucketProperties => ({ nVal: 3, consistent: true }) as BucketProperties;
const otherKeys = 4000;

/** An acceptor state whose committed value is `record` (null: deleted). */
function leaseState(ttlSeconds: number | null): Uint8Array {
  const ballot = { round: 1, proposer: 'p' };
  const value =
    ttlSeconds === null ? null : encodeConsistentValue({ contentType: 'application/octet-stream', value: encodeLeaseRecord(grantedLease(ttlSeconds)) });
  return encodeAcceptorState({ epoch: 1, promised: ballot, accepted: null, committed: { ballot, state: { version: 1, value, writes: [] } } });
}

async function scannerWithOtherKeys(
  maxKnown?: number,
  readRecord: (id: string) => Promise<Uint8Array | null> = async (id) => {
    throw new Error(`lease ${id} read remotely though held here`);
  },
): Promise<{ storage: MemoryStorage; scanner: LeaseScanner }> {
  const storage = new MemoryStorage();
  await storage.open();
  for (let index = 0; index < otherKeys; index++) await storage.paxos.put(encodeDataKey('counters', `k${index}`), leaseState(null));
  return { storage, scanner: oneNodeScanner(storage, 8, { readRecord, ...(maxKnown === undefined ? {} : { maxKnownLeases: maxKnown }) }) };
}

/** The scanner of the one node of a ring of `partitions`: it lists its own acceptor keys (a majority of one), telling `listed` of each partition it lists. */
function oneNodeScanner(
  storage: MemoryStorage,
  partitions: number,
  options: { readonly readRecord: (id: string) => Promise<Uint8Array | null>; readonly maxKnownLeases?: number; readonly listed?: number[] },
): LeaseScanner {
  const ring = createRing(partitions, ['n1']);
  const acceptors = new AcceptorStore({ space: storage.paxos, bucketProperties, ringVersion: () => 1, departed: () => false, stored: () => undefined });
  return new LeaseScanner({
    selfId: 'n1',
    ring: () => ring,
    isUp: () => true,
    bucketProperties,
    logger: silentLogger,
    space: storage.paxos,
    send: async (_node, request) => {
      if (request.type !== 'paxos-keys') throw new Error(`unexpected ${request.type}`);
      options.listed?.push(request.partition);
      return acceptors.keys(request, ring.partitionCount);
    },
    readRecord: options.readRecord,
    ...(options.maxKnownLeases === undefined ? {} : { maxKnownLeases: options.maxKnownLeases }),
  });
}

describe('LeaseScanner', () => {
  it('finds a lease record the acceptor store wrote at its next step, among thousands of other consistent keys', async () => {
    const { storage, scanner } = await scannerWithOtherKeys();
    await storage.paxos.put(encodeDataKey(leaseBucket, 'lease-a'), leaseState(5));
    scanner.stored(leaseBucket, 'lease-a');
    scanner.stored('counters', 'k1');
    const step = await scanner.next(limit);
    expect(step.leases).toEqual([{ id: 'lease-a', refresh: 1, ending: false, ttlSeconds: 5 }]);
    // Deleted: the next steps no longer report it.
    await storage.paxos.put(encodeDataKey(leaseBucket, 'lease-a'), leaseState(null));
    expect((await scanner.next(limit)).leases).toEqual([]);
    expect((await scanner.next(limit)).leases).toEqual([]);
  });

  it('finds a record written before this run by walking the paxos space, a bounded number of entries a step', async () => {
    const { storage, scanner } = await scannerWithOtherKeys();
    await storage.paxos.put(encodeDataKey(leaseBucket, 'lease-b'), leaseState(7));
    let steps = 0;
    for (;;) {
      steps += 1;
      const step = await scanner.next(limit);
      if (step.leases.length > 0) {
        expect(step.leases).toEqual([{ id: 'lease-b', refresh: 1, ending: false, ttlSeconds: 7 }]);
        break;
      }
      expect(steps, 'the walk reached the record within one pass of the space').toBeLessThanOrEqual(Math.ceil((otherKeys + 1) / limit) + 1);
    }
    // Once found, every later step reports it (it is known now), not once a pass.
    for (let again = 0; again < 3; again++) expect((await scanner.next(limit)).leases.map((lease) => lease.id)).toEqual(['lease-b']);
  });

  it('beyond its bound of known ids, reports every lease in every cycle, the ones it has no room for once a pass', async () => {
    const bound = 4;
    const { storage, scanner } = await scannerWithOtherKeys(bound);
    const ids = Array.from({ length: 12 }, (_, index) => `lease-${String(index).padStart(2, '0')}`);
    for (const id of ids) await storage.paxos.put(encodeDataKey(leaseBucket, id), leaseState(5));
    const passSteps = Math.ceil((otherKeys + ids.length) / limit) + 1;
    // Written now, with the known ids full: the walk finds it.
    let late = false;
    const cycles: Map<string, number>[] = [new Map()];
    for (let step = 0; cycles.length <= 3; step++) {
      expect(step, 'three cycles end within a few passes of the walk').toBeLessThan(4 * passSteps);
      if (step === passSteps + 3 && !late) {
        await storage.paxos.put(encodeDataKey(leaseBucket, 'lease-late'), leaseState(5));
        scanner.stored(leaseBucket, 'lease-late');
        late = true;
      }
      const scan = await scanner.next(limit);
      expect(scan.leases.length, 'a step reads at most `limit` records').toBeLessThanOrEqual(limit);
      const cycle = cycles[cycles.length - 1]!;
      for (const lease of scan.leases) cycle.set(lease.id, (cycle.get(lease.id) ?? 0) + 1);
      if (scan.wrapped) cycles.push(new Map());
    }
    const [, second, third] = cycles as [Map<string, number>, Map<string, number>, Map<string, number>];
    for (const cycle of [second, third]) {
      expect([...cycle.keys()].filter((id) => id !== 'lease-late').sort(), 'every lease is reported in the cycle').toEqual(ids);
      // The ids the known set holds are read at every step; the others only when the walk passes them.
      const counts = [...cycle.values()].sort((a, b) => b - a);
      expect(counts.filter((count) => count > 2).length, 'as many leases read at every round as the bound holds').toBe(bound);
    }
    expect(third.has('lease-late'), 'a lease written when the known set was full is found by the walk').toBe(true);
  });

  it('reads a listed record it holds only a promise of as decided, once a pass of the walk, and reports it in every cycle', async () => {
    const reads: string[] = [];
    const { storage, scanner } = await scannerWithOtherKeys(undefined, async (id) => {
      reads.push(id);
      return encodeLeaseRecord(grantedLease(9));
    });
    const ballot = { round: 1, proposer: 'p' };
    await storage.paxos.put(encodeDataKey(leaseBucket, 'lease-p'), encodeAcceptorState({ epoch: 1, promised: ballot, accepted: null, committed: null }));
    let cycles = 0;
    let seenInCycle = 0;
    for (let step = 0; cycles < 3; step++) {
      expect(step, 'three cycles end within a few passes').toBeLessThan(4 * (Math.ceil(otherKeys / limit) + 2));
      const scan = await scanner.next(limit);
      for (const lease of scan.leases) {
        expect(lease).toEqual({ id: 'lease-p', refresh: 1, ending: false, ttlSeconds: 9 });
        seenInCycle += 1;
      }
      if (!scan.wrapped) continue;
      if (cycles > 0) expect(seenInCycle, `cycle ${cycles}: the lease is reported once, when the walk passes it`).toBe(1);
      cycles += 1;
      seenInCycle = 0;
    }
    expect(reads.length, 'one decided read per pass, not one per step').toBeLessThanOrEqual(4);
    expect(reads.length).toBeGreaterThanOrEqual(2);
  });

  it('lists at most leaseWalkPartitionsPerStep partitions a step on an idle node, and still passes them all', async () => {
    // Before: a step listed every partition it sweeps (each listing asks a majority of the replicas), at every sweep of 500 ms.
    const storage = new MemoryStorage();
    await storage.open();
    const listed: number[] = [];
    const scanner = oneNodeScanner(storage, 64, { readRecord: async () => null, listed });
    let steps = 0;
    let wrapped = false;
    while (!wrapped && steps < 1000) {
      const before = listed.length;
      wrapped = (await scanner.next(limit)).wrapped;
      steps += 1;
      expect(listed.length - before, `listing requests of step ${steps}`).toBeLessThanOrEqual(leaseWalkPartitionsPerStep);
    }
    expect(new Set(listed).size, 'partitions listed in a pass').toBe(64);
    expect(steps).toBeGreaterThanOrEqual(64 / leaseWalkPartitionsPerStep);
  });
});
