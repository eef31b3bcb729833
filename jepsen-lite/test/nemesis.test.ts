import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { parseFaults, parseRunOptions } from '../src/cli-options.js';
import { faketimeEnvironment, faketimeOffsetText } from '../src/cluster.js';
import { type Fault, type PartitionShape, faultSummary, planClock, planFault, planNemesisSchedule, planPartition } from '../src/nemesis.js';

/**
 * The nemesis schedule must replay from its seed, and its faults must have the shapes Jepsen
 * gives them without ever taking down more than a minority of nodes.
 */

function canTalk(fault: Fault, a: number, b: number): boolean {
  if (fault.kind !== 'partition') return true;
  return !fault.blocked.some(([left, right]) => (left === a && right === b) || (left === b && right === a));
}

function reachable(fault: Fault, node: number, nodeCount: number): number {
  let count = 0;
  for (let other = 0; other < nodeCount; other++) if (other === node || canTalk(fault, node, other)) count += 1;
  return count;
}

describe('the nemesis schedule', () => {
  const options = { faults: ['partition', 'kill', 'pause'] as const, nodeCount: 5, timeLimitMs: 60_000, intervalMs: 5000 };

  it('replays exactly from the same seed and differs for another', () => {
    const first = planNemesisSchedule(options, new SeededRandom(7));
    expect(planNemesisSchedule(options, new SeededRandom(7))).toEqual(first);
    expect(planNemesisSchedule(options, new SeededRandom(8))).not.toEqual(first);
  });

  it('alternates start and stop within the time limit, one fault at a time', () => {
    const events = planNemesisSchedule(options, new SeededRandom(3));
    expect(events.length).toBeGreaterThan(2);
    events.forEach((event, index) => {
      expect(event.action).toBe(index % 2 === 0 ? 'start' : 'stop');
      expect(event.atMs).toBeLessThan(options.timeLimitMs);
      if (index > 0) expect(event.atMs).toBeGreaterThan((events[index - 1] as { atMs: number }).atMs);
    });
  });

  it('plans nothing when there are no faults', () => {
    expect(planNemesisSchedule({ ...options, faults: [] }, new SeededRandom(1))).toEqual([]);
  });
});

describe('the faults', () => {
  it('kill and pause at most a minority of the nodes', () => {
    for (let seed = 0; seed < 200; seed++) {
      for (const nodeCount of [3, 5, 7]) {
        const fault = planFault(seed % 2 === 0 ? 'kill' : 'pause', nodeCount, new SeededRandom(seed));
        if (fault.kind !== 'kill' && fault.kind !== 'pause') throw new Error('expected a process fault');
        expect(fault.nodes.length).toBeGreaterThanOrEqual(1);
        expect(fault.nodes.length).toBeLessThanOrEqual(Math.floor((nodeCount - 1) / 2));
        expect(new Set(fault.nodes).size).toBe(fault.nodes.length);
      }
    }
  });

  it('isolate cuts exactly one node off from all others', () => {
    const fault = planPartition('isolate', 5, new SeededRandom(1));
    const isolated = [0, 1, 2, 3, 4].filter((node) => reachable(fault, node, 5) === 1);
    expect(isolated).toHaveLength(1);
    expect(fault.kind === 'partition' && fault.blocked.length).toBe(4);
  });

  it('halves and majority split the nodes into two groups that cannot talk across', () => {
    for (const shape of ['halves', 'majority'] as PartitionShape[]) {
      for (let seed = 0; seed < 50; seed++) {
        const fault = planPartition(shape, 5, new SeededRandom(seed));
        if (fault.kind !== 'partition') throw new Error('expected a partition');
        const [left, right] = fault.groups as [number[], number[]];
        expect([...left, ...right].sort()).toEqual([0, 1, 2, 3, 4]);
        expect(Math.min(left.length, right.length)).toBeGreaterThanOrEqual(1);
        expect(Math.min(left.length, right.length)).toBeLessThanOrEqual(2);
        for (const a of left) for (const b of right) expect(canTalk(fault, a, b)).toBe(false);
      }
    }
  });

  it('bridge leaves one node that sees both halves, which cannot see each other', () => {
    const fault = planPartition('bridge', 5, new SeededRandom(4));
    const bridges = [0, 1, 2, 3, 4].filter((node) => reachable(fault, node, 5) === 5);
    expect(bridges).toHaveLength(1);
    for (let node = 0; node < 5; node++) if (!bridges.includes(node)) expect(reachable(fault, node, 5)).toBe(3);
  });

  it('ring lets every node see a majority, but not the same majority', () => {
    for (const nodeCount of [5, 7]) {
      const fault = planPartition('ring', nodeCount, new SeededRandom(9));
      const majority = Math.floor(nodeCount / 2) + 1;
      for (let node = 0; node < nodeCount; node++) expect(reachable(fault, node, nodeCount)).toBeGreaterThanOrEqual(majority);
      expect(fault.kind === 'partition' && fault.blocked.length).toBeGreaterThan(0);
    }
  });
});

describe('the membership nemesis', () => {
  const options = { faults: ['partition', 'kill', 'pause', 'membership'] as const, nodeCount: 5, timeLimitMs: 120_000, intervalMs: 3000, spareCount: 2 };

  /** Replays a schedule's membership changes, checking each against who is a member at that moment. */
  function replay(events: readonly { action: string; fault: Fault }[]): { members: Set<number>; joins: number; leaves: number; removes: number } {
    const members = new Set([0, 1, 2, 3, 4]);
    const spares = new Set([5, 6]);
    const gone = new Set<number>();
    let joins = 0;
    let leaves = 0;
    let removes = 0;
    for (const { action, fault } of events) {
      if (action !== 'start') continue;
      if (fault.kind === 'membership') {
        if (fault.action === 'join') {
          // A join is always a slot never started before: a fresh node with an empty disk.
          expect(spares.has(fault.node)).toBe(true);
          spares.delete(fault.node);
          members.add(fault.node);
          joins += 1;
        } else {
          expect(members.has(fault.node)).toBe(true);
          members.delete(fault.node);
          gone.add(fault.node);
          if (fault.action === 'remove') {
            // The removal is carried out by a live member, never by the node being removed.
            expect(members.has(fault.via ?? -1)).toBe(true);
            removes += 1;
          } else leaves += 1;
        }
        // Never fewer than n_val = 3 members, nor fewer than one below the starting size.
        expect(members.size).toBeGreaterThanOrEqual(4);
      } else if (fault.kind === 'kill' || fault.kind === 'pause') {
        for (const node of fault.nodes) expect(members.has(node)).toBe(true);
        expect(fault.nodes.length).toBeLessThanOrEqual(Math.floor((members.size - 1) / 2));
      } else if (fault.kind === 'partition') {
        // A partition splits today's members, and only them.
        const all = new Set(fault.groups.flat());
        expect([...all].sort()).toEqual([...members].sort());
      }
    }
    return { members, joins, leaves, removes };
  }

  it('joins only fresh slots, leaves and removes only members, and keeps every other fault on members', () => {
    let joins = 0;
    let leaves = 0;
    let removes = 0;
    for (let seed = 0; seed < 100; seed++) {
      const result = replay(planNemesisSchedule(options, new SeededRandom(seed)));
      joins += result.joins;
      leaves += result.leaves;
      removes += result.removes;
    }
    // Over 100 seeds every kind of change happens.
    expect(joins).toBeGreaterThan(0);
    expect(leaves).toBeGreaterThan(0);
    expect(removes).toBeGreaterThan(0);
  });

  it('without spare slots or room to shrink, plans no membership change at all', () => {
    const events = planNemesisSchedule({ ...options, faults: ['membership'], nodeCount: 3, spareCount: 0 }, new SeededRandom(1));
    expect(events).toEqual([]);
  });

  it('replays from its seed and leaves the schedule of the other faults as it was without spares', () => {
    const first = planNemesisSchedule(options, new SeededRandom(11));
    expect(planNemesisSchedule(options, new SeededRandom(11))).toEqual(first);
    const plain = { faults: ['partition', 'kill', 'pause'] as const, nodeCount: 5, timeLimitMs: 60_000, intervalMs: 5000 };
    expect(planNemesisSchedule({ ...plain, spareCount: 0 }, new SeededRandom(3))).toEqual(planNemesisSchedule(plain, new SeededRandom(3)));
  });
});

describe('the clock nemesis', () => {
  it('skews 1 to ceil(N/2) distinct nodes by 2 to 60 whole seconds either way', () => {
    const seen = { ahead: 0, behind: 0 };
    for (let seed = 0; seed < 200; seed++) {
      const fault = planClock(5, new SeededRandom(seed));
      if (fault.kind !== 'clock') throw new Error('expected a clock fault');
      expect(fault.nodes.length).toBeGreaterThanOrEqual(1);
      expect(fault.nodes.length).toBeLessThanOrEqual(3);
      expect(new Set(fault.nodes).size).toBe(fault.nodes.length);
      expect(fault.offsetsMs).toHaveLength(fault.nodes.length);
      for (const offset of fault.offsetsMs) {
        expect(Math.abs(offset) % 1000).toBe(0);
        expect(Math.abs(offset)).toBeGreaterThanOrEqual(2000);
        expect(Math.abs(offset)).toBeLessThanOrEqual(60_000);
        if (offset > 0) seen.ahead += 1;
        else seen.behind += 1;
      }
    }
    expect(seen.ahead).toBeGreaterThan(0);
    expect(seen.behind).toBeGreaterThan(0);
  });

  it('writes offsets in libfaketime format and loads it with the wall clock only faked', () => {
    expect(faketimeOffsetText(0)).toBe('+0s\n');
    expect(faketimeOffsetText(42_000)).toBe('+42s\n');
    expect(faketimeOffsetText(-7000)).toBe('-7s\n');
    expect(faketimeEnvironment('/lib/libfaketimeMT.so.1', '/run/n1.faketime')).toEqual({
      LD_PRELOAD: '/lib/libfaketimeMT.so.1',
      FAKETIME_TIMESTAMP_FILE: '/run/n1.faketime',
      FAKETIME_CACHE_DURATION: '1',
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    });
  });

  it('describes a clock fault with each node beside its offset', () => {
    const fault = { kind: 'clock', nodes: [0, 3], offsetsMs: [12_000, -5000] } as const;
    expect(faultSummary(fault, ['n1', 'n2', 'n3', 'n4'])).toBe('clock n1 +12.0s, n4 -5.0s');
    expect(parseFaults('clock,partition')).toEqual(['clock', 'partition']);
  });
});

describe('the command line', () => {
  it('reads the flags of the issue and expands all and none', () => {
    const options = parseRunOptions([
      '--workload',
      'set',
      '--nemesis',
      'partition,kill,pause',
      '--nodes',
      '5',
      '--time-limit',
      '60',
      '--concurrency',
      '10',
      '--conflict',
      'lww',
      '--seed',
      '42',
    ]);
    expect(options).toMatchObject({
      workload: 'set',
      faults: ['partition', 'kill', 'pause'],
      nodeCount: 5,
      timeLimitMs: 60_000,
      concurrency: 10,
      conflictMode: 'lww',
      seed: 42,
    });
    expect(parseFaults('all')).toEqual(['partition', 'kill', 'pause']);
    expect(parseFaults('none')).toEqual([]);
    expect(parseFaults('partition,kill,pause,membership')).toEqual(['partition', 'kill', 'pause', 'membership']);
  });

  it('refuses a bad value with a message that names the flag', () => {
    expect(() => parseRunOptions(['--conflict', 'newest'])).toThrow(/--conflict/);
    expect(() => parseRunOptions(['--nemesis', 'meteor'])).toThrow(/--nemesis/);
    expect(() => parseRunOptions(['--nodes', '2'])).toThrow(/--nodes/);
    expect(parseRunOptions(['--nodes', '3', '--shards', '2'])).toMatchObject({ nodeCount: 3, shards: 2 });
    expect(parseRunOptions([])).toMatchObject({ shards: 1 });
    expect(() => parseRunOptions(['--shards', '5'])).toThrow(/--shards/);
    // Hosts of several shards join, leave and are removed as a whole (cluster.ts), so membership is accepted with them.
    expect(parseRunOptions(['--nodes', '3', '--shards', '2', '--nemesis', 'partition,kill,pause,membership'])).toMatchObject({
      shards: 2,
      faults: ['partition', 'kill', 'pause', 'membership'],
    });
  });
});
