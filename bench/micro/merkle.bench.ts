/**
 * Micro-benchmarks of the anti-entropy Merkle tree: the per-write update (hash the stored item,
 * remove the old version's hash, add the new one) and the diff two replicas run (compare branch
 * hashes, then the leaves of differing branches). `npm run bench:micro`.
 */
import { bench, describe } from 'vitest';
import { MerkleTree, differingIndexes, itemHash, leafOfPosition, merkleFanout } from '../../src/core/antientropy/merkle-tree.js';
import { encodeDataKey, ringPosition } from '../../src/core/keys.js';

const partitionCount = 256;
const stored = new Uint8Array(160).fill(3);
const items = Array.from({ length: 4096 }, (_, index) => {
  const key = `key${String(index).padStart(10, '0')}`;
  const dataKey = encodeDataKey('bench', key);
  return { leaf: leafOfPosition(ringPosition('bench', key), partitionCount), dataKey, hash: itemHash(dataKey, stored) };
});

function filledTree(count: number): MerkleTree {
  const tree = new MerkleTree();
  for (let index = 0; index < count; index++) {
    const item = items[index % items.length] as (typeof items)[number];
    tree.add(item.leaf, item.hash);
  }
  return tree;
}

describe('Merkle update', () => {
  let next = 0;
  bench('itemHash (SHA-1 of key + 160 stored bytes)', () => {
    const item = items[next++ & 4095] as (typeof items)[number];
    itemHash(item.dataKey, stored);
  });
  const tree = filledTree(4096);
  bench('replace a version (remove old hash, add new)', () => {
    const item = items[next++ & 4095] as (typeof items)[number];
    tree.remove(item.leaf, item.hash);
    tree.add(item.leaf, item.hash);
  });
});

describe('Merkle diff', () => {
  const left = filledTree(4096);
  const same = filledTree(4096);
  const differs = filledTree(4096);
  // Ten keys changed on one replica: the diff has to find their branches and leaves.
  for (let index = 0; index < 10; index++) {
    const item = items[index * 397] as (typeof items)[number];
    differs.remove(item.leaf, item.hash);
  }
  const descend = (a: MerkleTree, b: MerkleTree): number[] => {
    if (a.root() === b.root()) return [];
    const leaves: number[] = [];
    for (const branch of differingIndexes(a.branchHashes(), b.branchHashes())) {
      for (const leaf of differingIndexes(a.leafHashes(branch), b.leafHashes(branch))) leaves.push(branch * merkleFanout + leaf);
    }
    return leaves;
  };
  bench('equal trees (root compare only)', () => {
    descend(left, same);
  });
  bench('10 differing keys (branches, then leaves of differing branches)', () => {
    descend(left, differs);
  });
  bench('branch hashes of one tree (what a replica sends)', () => {
    left.branchHashes();
  });
});
