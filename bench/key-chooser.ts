/**
 * Key choosers for the load generator: uniform, and YCSB's scrambled zipfian (Gray et al.,
 * "Quickly generating billion-record synthetic databases", as YCSB's ZipfianGenerator does it),
 * so a few keys are hot but the hot keys are scattered over the ring instead of being the
 * lowest indices (which would all share a handful of partitions).
 */

/** How keys are drawn from the key space. */
export type KeyDistribution = 'uniform' | 'zipfian';

/** Draws key indices in 0..keyCount-1. */
export interface KeyChooser {
  /** The next key index. */
  next(): number;
}

/** YCSB's default skew: about 80% of operations touch about 20% of the keys. */
export const zipfianTheta = 0.99;

/** Uniform over 0..keyCount-1. */
export function uniformChooser(keyCount: number, random: () => number = Math.random): KeyChooser {
  return { next: () => Math.floor(random() * keyCount) };
}

function zeta(count: number, theta: number): number {
  let sum = 0;
  for (let rank = 1; rank <= count; rank++) sum += 1 / Math.pow(rank, theta);
  return sum;
}

/** 64-bit FNV-1a of a number's decimal digits folded to 53 bits, as YCSB scrambles ranks. */
function fnvScramble(value: number): number {
  let hash = 0xcbf29ce484222325n;
  const text = String(value);
  for (let index = 0; index < text.length; index++) {
    hash ^= BigInt(text.charCodeAt(index));
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return Number(hash & 0x1fffffffffffffn);
}

/**
 * Scrambled zipfian over 0..keyCount-1: rank 0 is the most popular; the rank is hashed so that
 * popular keys land on unrelated partitions. Setup is O(keyCount) (the zeta sum), about 20 ms for
 * a million keys; each draw is O(1).
 */
export function zipfianChooser(keyCount: number, random: () => number = Math.random, theta = zipfianTheta): KeyChooser {
  const zetaN = zeta(keyCount, theta);
  const zeta2 = zeta(2, theta);
  const alpha = 1 / (1 - theta);
  const eta = (1 - Math.pow(2 / keyCount, 1 - theta)) / (1 - zeta2 / zetaN);
  const half = Math.pow(0.5, theta);
  // The hashed rank is memoised: BigInt FNV per draw would cost more than the request it feeds.
  const scrambled = new Int32Array(keyCount).fill(-1);
  const rankOf = (): number => {
    const u = random();
    const uz = u * zetaN;
    if (uz < 1) return 0;
    if (uz < 1 + half) return 1;
    return Math.min(keyCount - 1, Math.floor(keyCount * Math.pow(eta * u - eta + 1, alpha)));
  };
  return {
    next: () => {
      const rank = rankOf();
      let index = scrambled[rank] as number;
      if (index < 0) {
        index = fnvScramble(rank) % keyCount;
        scrambled[rank] = index;
      }
      return index;
    },
  };
}

/** The chooser for a distribution. */
export function keyChooser(distribution: KeyDistribution, keyCount: number, random: () => number = Math.random): KeyChooser {
  return distribution === 'zipfian' ? zipfianChooser(keyCount, random) : uniformChooser(keyCount, random);
}

/** The key name of an index: fixed width so every key has the same size on the wire and on disk. */
export function keyName(index: number): string {
  return `key${String(index).padStart(10, '0')}`;
}
