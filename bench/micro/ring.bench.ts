/**
 * Micro-benchmarks of the ring lookup on every request's path: hashing a key to its partition
 * and walking the ring to its preference list. `npm run bench:micro`.
 */
import { bench, describe } from 'vitest';
import { partitionOf } from '../../src/core/keys.js';
import { createRing, preferenceList } from '../../src/core/ring/ring.js';

const keys = Array.from({ length: 1024 }, (_, index) => `key${String(index).padStart(10, '0')}`);
const nodes = (count: number): string[] => Array.from({ length: count }, (_, index) => `node-${index + 1}`);

describe('ring lookup', () => {
  let next = 0;
  bench('partitionOf (SHA-1 of bucket/key), 256 partitions', () => {
    partitionOf('bench', keys[next++ & 1023] as string, 256);
  });

  for (const [memberCount, partitionCount] of [
    [3, 256],
    [16, 256],
    [16, 4096],
  ] as const) {
    const ring = createRing(partitionCount, nodes(memberCount));
    let partition = 0;
    bench(`preferenceList n=3, ${memberCount} nodes, ${partitionCount} partitions`, () => {
      preferenceList(ring, partition, 3);
      partition = (partition + 1) % partitionCount;
    });
  }

  bench('key to preference list (partitionOf + preferenceList), 3 nodes, 256 partitions', () => {
    const ring = ringOfThree;
    preferenceList(ring, partitionOf('bench', keys[next++ & 1023] as string, 256), 3);
  });
});

const ringOfThree = createRing(256, nodes(3));

describe('ring creation', () => {
  bench('createRing 256 partitions, 16 nodes', () => {
    createRing(256, nodes(16));
  });
});
