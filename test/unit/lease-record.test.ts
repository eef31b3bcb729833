import { describe, expect, it } from 'vitest';
import { decodeConsistentValue, encodeConsistentValue } from '../../src/core/consensus/consistent-value.js';
import {
  attachKey,
  decodeLeaseRecord,
  encodeLeaseRecord,
  grantedLease,
  leaseExpired,
  maxLeaseKeys,
  pruneKeys,
  sightLease,
} from '../../src/core/leases/lease-record.js';
import { isKvError } from '../../src/util/errors.js';

/**
 * Goal: the lease record's codec round-trips and refuses what it did not write; attaching is
 * idempotent and bounded at maxLeaseKeys; pruning keeps exactly what it is told; and the expiry
 * decision counts the ttl from the first sighting of a refresh number on the sweeper's own
 * monotonic clock, restarting it on a keep-alive (a new refresh) and never sooner.
 */
describe('lease record', () => {
  it('round-trips, and refuses another format, trailing bytes or a truncated record with KV_STORAGE', () => {
    const record = {
      ttlSeconds: 30,
      refresh: 7,
      ending: true,
      keys: [
        { bucket: 'locks', key: 'a/b' },
        { bucket: 'x', key: 'ü' },
      ],
    };
    expect(decodeLeaseRecord(encodeLeaseRecord(record))).toEqual(record);
    expect(decodeLeaseRecord(encodeLeaseRecord(grantedLease(5)))).toEqual({ ttlSeconds: 5, refresh: 1, ending: false, keys: [] });
    const bytes = Buffer.from(encodeLeaseRecord(record));
    for (const bad of [Buffer.concat([Buffer.from([2]), bytes.subarray(1)]), Buffer.concat([bytes, Buffer.from([0])]), bytes.subarray(0, bytes.length - 1)]) {
      let caught: unknown;
      try {
        decodeLeaseRecord(bad);
      } catch (error) {
        caught = error;
      }
      expect(isKvError(caught) && caught.code).toBe('KV_STORAGE');
    }
  });

  it('a consistent value names its lease (format 2) and a value without one keeps format 1', () => {
    const plain = { contentType: 'text/plain', value: Buffer.from('v') };
    expect(encodeConsistentValue(plain)[0]).toBe(1);
    expect(decodeConsistentValue(encodeConsistentValue(plain))).toEqual({ contentType: 'text/plain', value: Uint8Array.from(Buffer.from('v')) });
    const leased = encodeConsistentValue({ ...plain, lease: '0123456789abcdef' });
    expect(leased[0]).toBe(2);
    expect(decodeConsistentValue(leased).lease).toBe('0123456789abcdef');
  });

  it(`attaches a key once, refuses the ${maxLeaseKeys + 1}th, and prunes what it is told`, () => {
    let record = grantedLease(10);
    for (let index = 0; index < maxLeaseKeys; index++) {
      const next = attachKey(record, 'b', `k${index}`);
      if (next === 'full') throw new Error(`full at ${index}`);
      record = next;
    }
    expect(attachKey(record, 'b', 'k3'), 'an attached key attaches again without growing the list').toBe(record);
    expect(attachKey(record, 'b', 'extra')).toBe('full');
    const pruned = pruneKeys(record, (entry) => entry.key !== 'k3');
    expect(pruned.keys).toHaveLength(maxLeaseKeys - 1);
    expect(attachKey(pruned, 'b', 'extra')).not.toBe('full');
  });

  it('expires only a ttl after the first sighting of the refresh still seen; a keep-alive starts it again', () => {
    const first = sightLease(undefined, 1, 1000);
    expect(sightLease(first, 1, 2500), 'seeing the same refresh again does not move the start').toBe(first);
    expect(leaseExpired(sightLease(first, 1, 3999), 3, 3999)).toBe(false);
    expect(leaseExpired(first, 3, 4000)).toBe(true);
    const kept = sightLease(first, 2, 3500);
    expect(kept).toEqual({ refresh: 2, firstSeenAtMs: 3500 });
    expect(leaseExpired(kept, 3, 6499), 'a keep-alive restarts the ttl').toBe(false);
    expect(leaseExpired(kept, 3, 6500)).toBe(true);
  });
});
