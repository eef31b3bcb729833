/**
 * A small deterministic PRNG for simulation, so a failing run replays from its printed seed.
 * The generator is xoshiro128** (Blackman and Vigna), seeded through splitmix32 so that
 * nearby seeds such as 1 and 2 still give unrelated streams.
 */
import type { Random } from '../ports/random.js';
import { assert } from '../util/assert.js';

const twoToThe32 = 4_294_967_296;

/** One step of splitmix32 on `state`; returns the new state and an output word. */
function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) >>> 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return [next, (z ^ (z >>> 16)) >>> 0];
}

/** Rotates a 32-bit word left by `bits`. */
function rotateLeft(word: number, bits: number): number {
  return ((word << bits) | (word >>> (32 - bits))) >>> 0;
}

/** A seeded source of randomness; the same seed always gives the same sequence. */
export class SeededRandom implements Random {
  private readonly state = new Uint32Array(4);

  /** `seed` is any safe integer; both its low and high 32 bits matter. */
  constructor(readonly seed: number) {
    assert(Number.isSafeInteger(seed), 'a random seed is a safe integer');
    // Two splitmix32 streams, one from each half of the seed, so that seeds above 2^32 (such as a time in ms) are not folded together.
    let low = seed >>> 0;
    let high = (Math.floor(seed / twoToThe32) >>> 0) ^ 0x6a09e667;
    for (let index = 0; index < 4; index++) {
      const [nextLow, lowWord] = splitmix32(low);
      const [nextHigh, highWord] = splitmix32(high);
      low = nextLow;
      high = nextHigh;
      this.state[index] = (lowWord ^ rotateLeft(highWord, 13)) >>> 0;
    }
    // xoshiro128** stays at zero forever from an all-zero state; the mix above makes that vanishingly rare, and this rules it out.
    if (this.state.every((word) => word === 0)) this.state[0] = 1;
  }

  /** The next 32-bit unsigned word of the stream. */
  nextUint32(): number {
    const s = this.state;
    const result = Math.imul(rotateLeft(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const shifted = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= shifted;
    s[3] = rotateLeft(s[3]!, 11);
    return result;
  }

  /** A float in [0, 1) with 53 random bits, the full precision of a double. */
  next(): number {
    const high = this.nextUint32() >>> 5;
    const low = this.nextUint32() >>> 6;
    return (high * 67_108_864 + low) / 9_007_199_254_740_992;
  }

  /** An integer in [0, bound), without modulo bias; `bound` is an integer from 1 to 2^32. */
  int(bound: number): number {
    assert(Number.isInteger(bound) && bound >= 1 && bound <= twoToThe32, `int() takes an integer bound from 1 to 2^32, got ${bound}`);
    // Words at or above the largest multiple of `bound` are redrawn, so every result is equally likely.
    const limit = twoToThe32 - (twoToThe32 % bound);
    for (;;) {
      const word = this.nextUint32();
      if (word < limit) return word % bound;
    }
  }

  /** A new, independent stream derived from this one; forking advances this stream, deterministically. */
  fork(): SeededRandom {
    const high = this.nextUint32() & 0x1f_ffff;
    const low = this.nextUint32();
    return new SeededRandom(high * twoToThe32 + low);
  }
}
