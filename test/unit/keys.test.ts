import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeDataKey, encodeDataKey, partitionKeyRange, partitionOf, partitionOfPosition, ringPosition } from '../../src/core/keys.js';

describe('storage key layout: a partition is one contiguous key range', () => {
  it('round-trips bucket and key, including unicode and empty-looking parts', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40 }), fc.string({ minLength: 1, maxLength: 80 }), (bucket, key) => {
        const decoded = decodeDataKey(encodeDataKey(bucket, key));
        expect(decoded).toEqual({ position: ringPosition(bucket, key), bucket, key });
      }),
    );
  });

  it('puts every key inside its partition range, and only there', () => {
    const partitionCount = 64;
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (bucket, key) => {
        const partition = partitionOf(bucket, key, partitionCount);
        const dataKey = encodeDataKey(bucket, key);
        const { gte, lt } = partitionKeyRange(partition, partitionCount);
        expect(Buffer.compare(dataKey, gte)).toBeGreaterThanOrEqual(0);
        if (lt !== undefined) expect(Buffer.compare(dataKey, lt)).toBeLessThan(0);
      }),
    );
  });

  it('maps the ring into equal partitions', () => {
    expect(partitionOfPosition(0, 256)).toBe(0);
    expect(partitionOfPosition(2 ** 32 - 1, 256)).toBe(255);
    expect(partitionOfPosition(2 ** 24, 256)).toBe(1);
    expect(partitionOfPosition(2 ** 24 - 1, 256)).toBe(0);
  });

  it("answers SHA-1's position for every bucket and key, memoised or not, past the memo's bound", () => {
    // The same keys in several buckets, each asked twice in an interleaved order, over more keys
    // than the memo holds: a memo answer must be the key's own position in its own bucket.
    const sha1Position = (bucket: string, key: string): number => createHash('sha1').update(`${bucket}\u0000${key}`).digest().readUInt32BE(0);
    const buckets = ['b', 'other', 'b\u0000x'];
    const wrong: string[] = [];
    for (let round = 0; round < 2; round++) {
      for (let index = 0; index < 12_000; index++) {
        for (const bucket of buckets) {
          const key = round === 0 ? `k${index}` : `k${11_999 - index}`;
          if (ringPosition(bucket, key) !== sha1Position(bucket, key)) wrong.push(`${JSON.stringify(bucket)}/${key}`);
        }
      }
    }
    expect(wrong.slice(0, 5), `${wrong.length} positions differ from SHA-1's`).toEqual([]);
  });

  it('spreads keys over partitions roughly evenly', () => {
    const counts = new Array<number>(16).fill(0);
    for (let index = 0; index < 16_000; index++) counts[partitionOf('bucket', `key-${index}`, 16)]! += 1;
    for (const count of counts) expect(count).toBeGreaterThan(800);
  });
});
