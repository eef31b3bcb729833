import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { AssertionError } from '../../src/util/assert.js';

const draw = (random: SeededRandom, count: number): number[] => Array.from({ length: count }, () => random.next());

describe('SeededRandom replays the same stream from the same seed', () => {
  it('gives the same sequence of floats and integers for the same seed', () => {
    const sequence = (random: SeededRandom): number[] => Array.from({ length: 2000 }, (_, index) => (index % 2 === 0 ? random.next() : random.int(1000)));
    const left = sequence(new SeededRandom(42));
    expect(sequence(new SeededRandom(42))).toEqual(left);
    expect(new Set(left).size).toBeGreaterThan(1000);
  });

  it('gives different sequences for different seeds, including seeds that differ only above 2^32', () => {
    expect(draw(new SeededRandom(1), 8)).not.toEqual(draw(new SeededRandom(2), 8));
    expect(draw(new SeededRandom(7), 8)).not.toEqual(draw(new SeededRandom(7 + 2 ** 32), 8));
    expect(draw(new SeededRandom(0), 8)).not.toEqual(draw(new SeededRandom(-1), 8));
  });

  it('draws floats in [0, 1) spread evenly enough to average about one half', () => {
    const values = draw(new SeededRandom(3), 20_000);
    expect(values.every((value) => value >= 0 && value < 1)).toBe(true);
    const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
    expect(mean).toBeGreaterThan(0.49);
    expect(mean).toBeLessThan(0.51);
    expect(new Set(values).size).toBe(values.length);
  });

  it('draws integers in [0, bound), reaching every value about equally often', () => {
    const random = new SeededRandom(5);
    const values = Array.from({ length: 60_000 }, () => random.int(6));
    expect(values.every((value) => Number.isInteger(value) && value >= 0 && value < 6)).toBe(true);
    const counts = new Array<number>(6).fill(0);
    for (const value of values) counts[value]! += 1;
    for (const count of counts) expect(Math.abs(count - 10_000)).toBeLessThan(400);
  });

  it('handles the extreme bounds 1 and 2^32', () => {
    const random = new SeededRandom(9);
    for (let index = 0; index < 100; index++) expect(random.int(1)).toBe(0);
    const wide = Array.from({ length: 100 }, () => random.int(2 ** 32));
    expect(wide.every((value) => Number.isInteger(value) && value >= 0 && value < 2 ** 32)).toBe(true);
    expect(wide.some((value) => value >= 2 ** 31)).toBe(true);
  });

  it('refuses a bound that is not an integer from 1 to 2^32, and a seed that is not a safe integer', () => {
    const random = new SeededRandom(1);
    for (const bound of [0, -3, 2.5, 2 ** 32 + 1, Number.NaN]) expect(() => random.int(bound)).toThrow(AssertionError);
    expect(() => new SeededRandom(0.5)).toThrow(AssertionError);
  });
});

describe('SeededRandom.fork() derives independent, replayable streams', () => {
  it('forks identically from identical parents', () => {
    expect(draw(new SeededRandom(11).fork(), 16)).toEqual(draw(new SeededRandom(11).fork(), 16));
  });

  it('gives a fork a stream unlike its parent and unlike its sibling forks', () => {
    const parent = new SeededRandom(11);
    const first = parent.fork();
    const second = parent.fork();
    const parentValues = draw(parent, 16);
    const firstValues = draw(first, 16);
    expect(firstValues).not.toEqual(parentValues);
    expect(firstValues).not.toEqual(draw(second, 16));
  });

  it('keeps the parent stream the same however much a fork is used', () => {
    const busy = new SeededRandom(13);
    const idle = new SeededRandom(13);
    draw(busy.fork(), 500);
    idle.fork();
    expect(draw(busy, 16)).toEqual(draw(idle, 16));
  });

  it('replays a fork from its own seed', () => {
    const fork = new SeededRandom(17).fork();
    const replay = new SeededRandom(fork.seed);
    expect(draw(replay, 16)).toEqual(draw(fork, 16));
  });
});
