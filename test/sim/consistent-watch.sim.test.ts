import { afterEach, describe, expect, it } from 'vitest';
import { decodeConsistentValue } from '../../src/core/consensus/consistent-value.js';
import type { BrokenVariant } from '../../src/core/consensus/broken-variants.js';
import type { WatchFilter } from '../../src/core/watch/watch-cursor.js';
import type { WatchItem, WatchStream } from '../../src/engine/watches.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';
import { isKvError } from '../../src/util/errors.js';

/**
 * Goals of watches on consistent buckets (README, "Watches"; docs/CONSENSUS.md, "Watches"), on
 * real engines in the simulated cluster: every decided write of a watched key is reported once,
 * in version order, with its value, whichever proposer decided it, including a write whose
 * proposer never heard it was decided (its replies lost) and was carried forward by the next
 * round; a watcher that resumes with its last id on another node misses nothing and sees
 * nothing twice; a version whose report was lost with a crashed node is an explicit `compacted`
 * for the key, never a silent gap. With message loss and competing proposers on every node and
 * no crash, no version may be missing at all; the broken proposer that does not report the
 * states it carries forward must be caught. The seed is printed by SimCluster on failure;
 * SIM_SEED=<n> replays one.
 */

const bucket = 'config';
const config = { buckets: { [bucket]: { consistent: true } } };
/**
 * The seeds the broken proposer must be caught on (some of them): fixed, also when SIM_SEED
 * replays one seed of the other tests. It needs a run where a proposer's answers are lost after
 * its decision and the next round carries the state, which not every seed has (2410, 2421 and
 * 2433 of 2404-2440 have none), so replaying such a seed used to fail this test with nothing wrong.
 */
const detectionSeeds = [2401, 2402, 2403];
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : detectionSeeds;
const keys = ['k0', 'k1'];

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** One watcher: every item it received over its streams, and how to resume it elsewhere. */
class Watcher {
  readonly items: WatchItem[] = [];
  private stream: WatchStream;
  private done: Promise<void>;

  constructor(
    private readonly sim: SimCluster,
    private readonly filter: WatchFilter,
    member: SimMember,
  ) {
    [this.stream, this.done] = this.open(member, undefined);
  }

  lastId(): string | undefined {
    for (let index = this.items.length - 1; index >= 0; index--) {
      const item = this.items[index]!;
      if (item.kind !== 'overflow') return item.id;
    }
    return undefined;
  }

  ready(): boolean {
    return this.items.some((item) => item.kind === 'ready');
  }

  /** Disconnects and resumes with the last id on `member`. */
  async resume(member: SimMember): Promise<void> {
    this.stream.close();
    await this.sim.drive(this.done);
    [this.stream, this.done] = this.open(member, this.lastId());
  }

  async close(): Promise<void> {
    this.stream.close();
    await this.sim.drive(this.done);
  }

  /** The decided versions reported for `key`, in arrival order, with their values. */
  decided(key: string): { version: number; value: string | null }[] {
    return this.items.flatMap((item) =>
      item.kind === 'decided' && item.key === key
        ? [{ version: item.version, value: item.value === null ? null : Buffer.from(decodeConsistentValue(item.value).value).toString() }]
        : [],
    );
  }

  private open(member: SimMember, resumeFrom: string | undefined): [WatchStream, Promise<void>] {
    const stream = member.node.watch(this.filter, resumeFrom);
    const done = (async () => {
      for await (const item of stream) this.items.push(item);
    })();
    return [stream, done];
  }
}

/**
 * When each node's watch log got each version of a key (the simulation's time): `write` asks it
 * whether the acknowledging node logged the version at the moment of the acknowledgment, which
 * its round does when it decided the version itself (the `decided` effect comes just before the
 * reply, in the same step).
 */
class LogTimes {
  private readonly times = new Map<string, number>();
  private readonly watched = new WeakSet<object>();

  constructor(private readonly sim: SimCluster) {}

  /** Starts recording the appends of the node `member` runs now (a restarted node is a new one). */
  follow(member: SimMember): void {
    const log = member.node.watchLog;
    if (this.watched.has(log)) return;
    this.watched.add(log);
    const append = log.appendDecided.bind(log);
    log.appendDecided = (bucketName, key, version, value) => {
      this.times.set(`${member.nodeId} ${key}@${version}`, this.sim.clock.nowMs());
      append(bucketName, key, version, value);
    };
  }

  loggedNow(member: SimMember, key: string, version: number): boolean {
    return this.times.get(`${member.nodeId} ${key}@${version}`) === this.sim.clock.nowMs();
  }
}

/**
 * Unconditional writes of unique values: each acknowledged one has its version, and `ownRound`
 * says whether the acknowledging round reported the version itself (it decided it, or found it
 * undecided or uncommitted as the newest state), rather than a recovery round that found the write
 * under newer versions other rounds decided.
 */
async function write(
  sim: SimCluster,
  member: SimMember,
  key: string,
  value: string,
  logTimes: LogTimes,
): Promise<{ ok: true; version: number; ownRound: boolean } | { ok: false }> {
  logTimes.follow(member);
  const operation = member.node
    .consistent(bucket, key, { kind: 'write', value: { contentType: 'text/plain', value: Buffer.from(value) }, condition: { kind: 'none' } }, 1000)
    .then(
      (result) => ({ ok: true as const, version: result.version, ownRound: logTimes.loggedNow(member, key, result.version) }),
      (error: unknown) => {
        if (!isKvError(error)) throw error;
        return { ok: false as const };
      },
    );
  const silence = sim.clock.sleep(3000).then(() => ({ ok: false as const }));
  return Promise.race([operation, silence]);
}

interface Run {
  /** What went wrong, one line each (empty when the run kept every promise). */
  readonly problems: string[];
  /** Acknowledged writes, for the test's own "the run did something". */
  readonly acknowledged: number;
  /** Decided events the watchers received. */
  readonly events: number;
}

/**
 * Clients on every node write unique values to two keys at once (competing proposers) while a
 * key watcher and a prefix watcher follow them and resume on other nodes; `crashes` also kills
 * a proposer mid-run. Judges each watcher per key: versions strictly rising (nothing twice, in
 * order); every skipped version inside a `compacted` for the key; every acknowledged version
 * reported with its value; the last version the final read shows reported. With `strict` (no
 * crash, so no log is lost) also: no version that some node's log holds is skipped, and the
 * version before an acknowledged one whose round reported it is in some node's log (its proposer
 * reported it before it committed it, or the acknowledged round carried and reported it). A
 * version is in no log only when its round and the next one both lost the answers to their
 * proposals (README, "Watches"); the next one's write may still be acknowledged, by a recovery
 * round that finds it under newer versions and reports nothing it carried, so such an answer is
 * not judged by that check (the watchers' `compacted` for the missing version still is).
 */
async function runScenario(seed: number, options: { crashes: boolean; strict: boolean; broken?: BrokenVariant }): Promise<Run> {
  const sim = (cluster = await SimCluster.start(seed, 4, config, options.broken === undefined ? {} : { brokenProposer: options.broken }));
  const members = sim.members as readonly SimMember[];
  const watchers = [new Watcher(sim, { bucket, kind: 'key', name: 'k0' }, members[0]!), new Watcher(sim, { bucket, kind: 'prefix', name: 'k' }, members[1]!)];
  await sim.runUntil(() => watchers.every((watcher) => watcher.ready()), 10_000, 'the watches are ready');
  // Lost requests and replies: a proposer may never hear that its proposal was decided.
  sim.network.faults.dropProbability = 0.08;
  const acknowledged = new Map<string, Map<number, string>>(keys.map((key) => [key, new Map()]));
  /** Acknowledged versions whose acknowledging round reported them itself (see `write`). */
  const reportedByOwnRound = new Map<string, Set<number>>(keys.map((key) => [key, new Set()]));
  const logTimes = new LogTimes(sim);
  let counter = 0;
  const clients = (rounds: number) =>
    members.map(async (member, client) => {
      for (let index = 0; index < rounds && member.running; index++) {
        const key = keys[(client + index) % keys.length]!;
        const value = `c${client}-${counter++}`;
        const outcome = await write(sim, member, key, value, logTimes);
        if (outcome.ok) acknowledged.get(key)!.set(outcome.version, value);
        if (outcome.ok && outcome.ownRound) reportedByOwnRound.get(key)!.add(outcome.version);
      }
    });
  for (let phase = 0; phase < 3; phase++) {
    const running = Promise.all(clients(4));
    if (options.crashes && phase === 1) {
      // A proposer dies mid-round: its decided writes are carried forward by the next rounds.
      await sim.drive(sim.clock.sleep(7));
      await sim.crash(members[3]!, 'process');
    }
    await sim.drive(running);
    if (options.crashes && phase === 1) await sim.restart(members[3]!);
    // Each watcher disconnects and resumes with its last id on another node.
    for (const [index, watcher] of watchers.entries()) await watcher.resume(members[(phase + index + 2) % 3]!);
  }
  sim.network.faults.dropProbability = 0;
  const problems: string[] = [];
  // The final state of each key, read linearizably (it also reports a decided state nobody reported).
  const finalVersions = new Map<string, number>();
  for (const key of keys) {
    const final = await sim.drive(members[0]!.node.consistent(bucket, key, { kind: 'read' }, 5000));
    finalVersions.set(key, final.version);
  }
  const caughtUp = () =>
    watchers.every((watcher, index) => (index === 0 ? ['k0'] : keys).every((key) => (watcher.decided(key).at(-1)?.version ?? 0) >= finalVersions.get(key)!));
  // A watcher told that a restarted node's writes may be missing need not reach them.
  await sim.runUntil(caughtUp, 30_000, 'every watcher reaches the final versions').catch(() => undefined);
  await sim.clock.advance(3000);
  // What every node's log holds, read through its own poll from the start.
  const logged = new Map<string, Set<number>>(keys.map((key) => [key, new Set()]));
  const loggedBy = new Map<string, Set<string>>();
  for (const member of members) {
    const log = member.node.watchLog;
    const reply = await sim.drive(
      log.poll({ type: 'watch-poll', filter: { bucket, kind: 'prefix', name: '' }, cursor: { epoch: log.epoch, seq: 0 }, waitMs: 0, maxWrites: 10_000 }),
    );
    for (const entry of reply.writes) {
      if (entry.kind !== 'consistent') continue;
      logged.get(entry.key)?.add(entry.version);
      loggedBy.set(`${entry.key}@${entry.version}`, (loggedBy.get(`${entry.key}@${entry.version}`) ?? new Set()).add(member.nodeId));
    }
  }
  if (options.strict) {
    for (const key of keys) {
      for (const version of reportedByOwnRound.get(key)!) {
        if (version > 1 && !logged.get(key)!.has(version - 1))
          problems.push(`key ${key}: version ${version} was acknowledged, but version ${version - 1} is in no node's log`);
      }
    }
  }
  let events = 0;
  for (const [index, watcher] of watchers.entries()) {
    await watcher.close();
    for (const key of index === 0 ? ['k0'] : keys) {
      const seen = watcher.decided(key);
      events += seen.length;
      // Versions the watcher was told it may miss: a compacted for the key, or one for a node whose
      // log (restarted after a crash) holds the version or that no log holds (the crashed run's).
      const missing = new Set<number>();
      const compactedNodes = new Set<string>();
      for (const item of watcher.items) {
        if (item.kind === 'compacted' && item.key === key && item.missing !== undefined)
          for (let version = item.missing.from; version <= item.missing.to; version++) missing.add(version);
        if (item.kind === 'compacted') for (const node of item.nodes) compactedNodes.add(node);
      }
      const told = (version: number): boolean => {
        if (missing.has(version)) return true;
        const holders = loggedBy.get(`${key}@${version}`);
        return compactedNodes.size > 0 && (holders === undefined || [...holders].some((node) => compactedNodes.has(node)));
      };
      const name = `watcher ${index} key ${key}`;
      let previous = 0;
      for (const { version } of seen) {
        if (version <= previous) problems.push(`${name}: version ${version} after ${previous} (twice or out of order)`);
        for (let skipped = previous + 1; skipped < version; skipped++) {
          if (!told(skipped)) problems.push(`${name}: version ${skipped} skipped silently`);
          else if (options.strict && logged.get(key)!.has(skipped))
            problems.push(`${name}: version ${skipped} is in a node's log, but was skipped (compacted)`);
        }
        previous = Math.max(previous, version);
      }
      for (const [version, value] of acknowledged.get(key)!) {
        const event = seen.find((candidate) => candidate.version === version);
        if (event === undefined && !told(version)) problems.push(`${name}: acknowledged version ${version} (${value}) never reported`);
        if (event !== undefined && event.value !== value) problems.push(`${name}: version ${version} reported as ${event.value}, acknowledged as ${value}`);
      }
      if (previous < finalVersions.get(key)! && !told(finalVersions.get(key)!))
        problems.push(`${name}: last reported version ${previous}, the key is at ${finalVersions.get(key)}`);
    }
  }
  const count = [...acknowledged.values()].reduce((sum, versions) => sum + versions.size, 0);
  return { problems, acknowledged: count, events };
}

describe('simulation: watches on consistent buckets', () => {
  it.each(seeds)(
    'seed %i: with message loss and competing proposers, each watcher sees every reported version of each key once, in order, with its value',
    async (seed) => {
      const run = await runScenario(seed, { crashes: false, strict: true });
      expect(run.acknowledged, `seed ${seed}: writes were acknowledged`).toBeGreaterThan(10);
      expect(run.events, `seed ${seed}: events were checked`).toBeGreaterThan(10);
      expect(run.problems, `seed ${seed}`).toEqual([]);
    },
  );

  it.each(seeds)('seed %i: with a proposer killed mid-run too, nothing twice or out of order, and a missing version only inside a compacted', async (seed) => {
    const run = await runScenario(seed, { crashes: true, strict: false });
    expect(run.acknowledged, `seed ${seed}: writes were acknowledged`).toBeGreaterThan(10);
    expect(run.events, `seed ${seed}: events were checked`).toBeGreaterThan(10);
    expect(run.problems, `seed ${seed}`).toEqual([]);
  });

  it('catches a proposer that does not report the decided states it carries forward', async () => {
    const caught: string[] = [];
    for (const seed of detectionSeeds) {
      const run = await runScenario(seed, { crashes: false, strict: true, broken: 'skip-carried-report' });
      await cluster?.stop();
      cluster = undefined;
      if (run.problems.length > 0) caught.push(`seed ${seed}: ${run.problems[0]}`);
    }
    expect(caught.length, 'the broken proposer is caught on some seed').toBeGreaterThan(0);
  });
});
