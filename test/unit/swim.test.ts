import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type SwimConfig, type SwimEffect, SwimMember, defaultSwimConfig, suspicionTimeoutMs } from '../../src/core/membership/swim.js';
import { type SwimMessage, type SwimRecord, swimMessageBytes } from '../../src/core/membership/swim-messages.js';
import { decodeReply, decodeRequest, encodeReply, encodeRequest } from '../../src/core/wire/codec.js';
import { frameHeaderBytes } from '../../src/core/wire/frames.js';
import type { PeerReply, PeerRequest } from '../../src/core/wire/messages.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';

/**
 * Goal: the SWIM core (src/core/membership/swim.ts) detects, suspects, refutes and disseminates
 * by the rules of SWIM and Lifeguard, and never sends a message over its byte cap; and the size
 * model (swim-messages.ts) is exactly the bytes the message table writes on the framed wire.
 */

const startMs = 1_000_000;

const recordOf = (id: string, version = 0, state: SwimRecord['state'] = 'alive', accuser = ''): SwimRecord => ({
  id,
  address: `10.0.0.${id.slice(1)}:7000`,
  generation: 1,
  version,
  state,
  lifecycle: 'up',
  accuser,
  transfersDoneForRing: 0,
});

/** Members that all know each other, at `startMs`. */
function settled(count: number, config: Partial<SwimConfig> = {}, seed = 1): Map<string, SwimMember> {
  const random = new SeededRandom(seed);
  const records = Array.from({ length: count }, (_, index) => recordOf(`n${index}`));
  return new Map(
    records.map((record) => [
      record.id,
      new SwimMember({
        id: record.id,
        address: record.address,
        generation: 1,
        lifecycle: 'up',
        random: random.fork(),
        nowMs: startMs,
        config,
        members: records,
      }),
    ]),
  );
}

interface Routed {
  readonly sent: { readonly from: string; readonly to: string; readonly message: SwimMessage }[];
  readonly downs: { readonly observer: string; readonly id: string }[];
}

/** Delivers `effects` (and everything they cause) at once; messages to ids in `unreachable` are lost. */
function route(
  members: Map<string, SwimMember>,
  from: string,
  effects: readonly SwimEffect[],
  nowMs: number,
  unreachable: ReadonlySet<string> = new Set(),
  routed: Routed = { sent: [], downs: [] },
): Routed {
  const pending: [string, SwimEffect][] = effects.map((effect) => [from, effect]);
  while (pending.length > 0) {
    const [sender, effect] = pending.shift() as [string, SwimEffect];
    if (effect.kind === 'member-down') routed.downs.push({ observer: sender, id: effect.id });
    if (effect.kind !== 'send') continue;
    routed.sent.push({ from: sender, to: effect.to, message: effect.message });
    const receiver = members.get(effect.to);
    if (receiver === undefined || unreachable.has(effect.to) || unreachable.has(sender)) continue;
    for (const next of receiver.receive(effect.message, nowMs)) pending.push([effect.to, next]);
  }
  return routed;
}

/** Ticks every member (but those in `frozen`) every tickIntervalMs from `fromMs` through `toMs`. */
function runTicks(
  members: Map<string, SwimMember>,
  fromMs: number,
  toMs: number,
  unreachable: ReadonlySet<string> = new Set(),
  frozen: ReadonlySet<string> = unreachable,
): Routed {
  const routed: Routed = { sent: [], downs: [] };
  for (let nowMs = fromMs; nowMs <= toMs; nowMs += defaultSwimConfig.tickIntervalMs) {
    for (const [id, member] of members) if (!frozen.has(id)) route(members, id, member.tick(nowMs), nowMs, unreachable, routed);
  }
  return routed;
}

const text = fc.string({ maxLength: 60 });
const label = fc.string({ minLength: 1, maxLength: 20 });
const count = fc.nat({ max: 2 ** 40 });
const hash = fc.nat({ max: 0xffff_ffff });
const state = fc.constantFrom('alive', 'suspect', 'dead', 'left', 'removed') as fc.Arbitrary<SwimRecord['state']>;
const record: fc.Arbitrary<SwimRecord> = fc.record(
  {
    id: text,
    address: text,
    generation: count,
    version: count,
    state,
    lifecycle: fc.constantFrom('joining', 'up', 'leaving', 'left', 'removed') as fc.Arbitrary<SwimRecord['lifecycle']>,
    accuser: text,
    transfersDoneForRing: count,
    location: fc.record({ host: label, zone: label }, { requiredKeys: ['host'] }),
  },
  { requiredKeys: ['id', 'address', 'generation', 'version', 'state', 'lifecycle', 'accuser', 'transfersDoneForRing'] },
);
const records = fc.array(record, { maxLength: 140 });
const message: fc.Arbitrary<SwimMessage> = fc.oneof(
  fc.record({ type: fc.constant('swim-ping' as const), sequence: count, from: text, target: text, updates: records }),
  fc.record({ type: fc.constant('swim-ack' as const), sequence: count, from: text, updates: records }),
  fc.record({ type: fc.constant('swim-ping-req' as const), sequence: count, from: text, target: text, updates: records }),
  fc.record({ type: fc.constant('swim-nack' as const), sequence: count, from: text }),
  fc.record({ type: fc.constant('swim-gossip' as const), from: text, updates: records }),
  fc.record({ type: fc.constant('swim-records' as const), from: text, records }),
  fc.record({
    type: fc.constant('swim-digest' as const),
    sequence: count,
    from: text,
    afterId: text,
    throughId: text,
    ringVersion: count,
    ringHash: hash,
    bucketPropertiesVersion: count,
    entries: fc.array(fc.record({ id: text, generation: count, version: count, state }), { maxLength: 140 }),
  }),
  fc.record({
    type: fc.constant('swim-digest-reply' as const),
    sequence: count,
    from: text,
    coveredThroughId: text,
    ringVersion: count,
    ringHash: hash,
    bucketPropertiesVersion: count,
    records,
    wanted: fc.array(text, { maxLength: 140 }),
  }),
);

const isReply = (original: SwimMessage): original is Extract<PeerReply, SwimMessage> =>
  original.type === 'swim-ack' || original.type === 'swim-nack' || original.type === 'swim-digest-reply';

describe('SWIM messages on the framed wire', () => {
  it('counts exactly the bytes the message table writes, frame header included, and decodes to the same message', () => {
    fc.assert(
      fc.property(message, (original) => {
        const payload = isReply(original) ? encodeReply(original) : encodeRequest(original as Extract<PeerRequest, SwimMessage>);
        expect(swimMessageBytes(original)).toBe(frameHeaderBytes + payload.length);
        expect(isReply(original) ? decodeReply(payload) : decodeRequest(payload)).toEqual(original);
      }),
      { numRuns: 300 },
    );
  });
});

describe('SWIM suspicion timeout (Lifeguard, memberlist suspicion.go)', () => {
  it('starts at the maximum and reaches the minimum after the wanted confirmations, never below', () => {
    expect(suspicionTimeoutMs(0, 2, 4000, 24_000)).toBe(24_000);
    expect(suspicionTimeoutMs(1, 2, 4000, 24_000)).toBeLessThan(24_000);
    expect(suspicionTimeoutMs(1, 2, 4000, 24_000)).toBeGreaterThan(4000);
    expect(suspicionTimeoutMs(2, 2, 4000, 24_000)).toBe(4000);
    expect(suspicionTimeoutMs(5, 2, 4000, 24_000)).toBe(4000);
    expect(suspicionTimeoutMs(0, 0, 4000, 24_000)).toBe(4000);
  });
});

describe('SWIM failure detection', () => {
  it('probes every member in turn; members that answer are never suspected', () => {
    const members = settled(5);
    const routed = runTicks(members, startMs, startMs + 20_000);
    const pinged = new Set(routed.sent.filter((sent) => sent.message.type === 'swim-ping').map((sent) => sent.to));
    expect([...pinged].sort()).toEqual(['n0', 'n1', 'n2', 'n3', 'n4']);
    for (const member of members.values()) for (const id of members.keys()) expect(member.stateOf(id)).toBe('alive');
    expect(routed.downs).toEqual([]);
  });

  it('asks others to probe when the direct ack is missing, and their relayed ack saves the member', () => {
    const members = settled(5);
    // n0 cannot reach n1 directly (a one-way link fault), but the others can.
    const n0 = members.get('n0') as SwimMember;
    let nowMs = startMs;
    let probeOfN1: SwimMessage | undefined;
    while (probeOfN1 === undefined) {
      nowMs += 100;
      // The others answer n0's probes of them, so none is suspect when n0 needs them to probe n1.
      const effects = n0.tick(nowMs);
      route(members, 'n0', effects, nowMs, new Set(['n1']));
      const ping = effects.find((effect) => effect.kind === 'send' && effect.message.type === 'swim-ping' && effect.to === 'n1');
      if (ping?.kind === 'send') probeOfN1 = ping.message;
    }
    const probeSequence = (probeOfN1 as { sequence: number }).sequence;
    let indirect: SwimEffect[] = [];
    while (indirect.length === 0) {
      nowMs += 100;
      indirect = n0.tick(nowMs).filter((effect) => effect.kind === 'send' && effect.message.type === 'swim-ping-req');
    }
    expect(indirect).toHaveLength(defaultSwimConfig.indirectChecks);
    const routed = route(members, 'n0', indirect, nowMs);
    expect(routed.sent.filter((sent) => sent.to === 'n0' && sent.message.type === 'swim-ack' && sent.message.sequence === probeSequence)).not.toHaveLength(0);
    for (let later = nowMs; later < nowMs + 2000; later += 100) route(members, 'n0', n0.tick(later), later, new Set(['n1']));
    expect(n0.stateOf('n1')).toBe('alive');
    expect(n0.healthScore).toBe(0);
  });

  it('suspects a member that answers nobody, gossips the suspicion, and declares it dead when the suspicion times out', () => {
    const members = settled(6);
    const dead = new Set(['n5']);
    const routed = runTicks(members, startMs, startMs + 60_000, dead);
    for (const [id, member] of members) if (id !== 'n5') expect(member.stateOf('n5'), `${id}'s view of n5`).toBe('dead');
    expect(routed.downs.filter((down) => down.id !== 'n5')).toEqual([]);
    // Several members confirmed the suspicion, so no one waited the maximum (6 times the minimum).
    const minimumMs = defaultSwimConfig.suspicionMultiplier * Math.log10(6) * defaultSwimConfig.probeIntervalMs;
    const suspicions = routed.sent.filter(
      (sent) => sent.message.type === 'swim-gossip' && sent.message.updates.some((update) => update.id === 'n5' && update.state === 'suspect'),
    );
    expect(suspicions).not.toHaveLength(0);
    const deadEverywhere = runTicksUntilDead(settled(6), 'n5');
    expect(deadEverywhere).toBeLessThan(defaultSwimConfig.suspicionMaxTimeoutMultiplier * minimumMs);
  });

  it('lets a suspected member refute with a newer version, which clears the suspicion everywhere', () => {
    const members = settled(4);
    const n0 = members.get('n0') as SwimMember;
    const n3 = members.get('n3') as SwimMember;
    const suspicion = recordOf('n3', 0, 'suspect', 'n1');
    route(members, 'n1', [{ kind: 'send', to: 'n0', message: { type: 'swim-gossip', from: 'n1', updates: [suspicion] } }], startMs);
    expect(n0.stateOf('n3')).toBe('suspect');
    n3.receive({ type: 'swim-gossip', from: 'n0', updates: [suspicion] }, startMs);
    expect(n3.recordOf('n3')?.version).toBe(1);
    // Having been suspected, n3 takes it as a hint that it may be the slow one (Lifeguard).
    expect(n3.healthScore).toBe(1);
    const routed = runTicks(members, startMs, startMs + 3000);
    for (const [id, member] of members) expect(member.stateOf('n3'), `${id}'s view of n3`).toBe('alive');
    expect(routed.downs).toEqual([]);
  });

  it('tells a member that pings while held dead, in the ack, so it refutes at once and comes back everywhere', () => {
    const members = settled(4);
    const n0 = members.get('n0') as SwimMember;
    const n2 = members.get('n2') as SwimMember;
    // n0 and n1 hold n2 dead (say it was paused past its suspicion timeout); the news has run out, and n2 never heard it.
    for (const holder of ['n0', 'n1']) members.get(holder)?.receive({ type: 'swim-records', from: 'n3', records: [recordOf('n2', 0, 'dead', 'n3')] }, startMs);
    expect(n0.stateOf('n2')).toBe('dead');
    const routed = route(
      members,
      'n2',
      [{ kind: 'send', to: 'n0', message: { type: 'swim-ping', sequence: 1, from: 'n2', target: 'n0', updates: [] } }],
      startMs,
    );
    const ack = routed.sent.find((sent) => sent.message.type === 'swim-ack');
    expect(ack?.message.type === 'swim-ack' && ack.message.updates[0]).toEqual(recordOf('n2', 0, 'dead', 'n3'));
    expect(n2.recordOf('n2')?.version).toBe(1);
    runTicks(members, startMs, startMs + 3000);
    for (const [id, member] of members) expect(member.stateOf('n2'), `${id}'s view of n2`).toBe('alive');
  });

  it('does not count a suspicion deadline that passed while this member itself was stalled, and takes the refutation that waited', () => {
    const members = settled(4);
    const n0 = members.get('n0') as SwimMember;
    n0.tick(startMs);
    n0.receive({ type: 'swim-gossip', from: 'n1', updates: [recordOf('n3', 0, 'suspect', 'n1')] }, startMs);
    expect(n0.stateOf('n3')).toBe('suspect');
    // n0's event loop is stalled far past any suspicion timeout; the refutation waits in its socket.
    const resumedMs =
      startMs + 10 * defaultSwimConfig.suspicionMaxTimeoutMultiplier * defaultSwimConfig.suspicionMultiplier * defaultSwimConfig.probeIntervalMs;
    const effects = n0.tick(resumedMs);
    expect(effects.filter((effect) => effect.kind === 'member-down')).toEqual([]);
    n0.receive({ type: 'swim-gossip', from: 'n3', updates: [recordOf('n3', 1)] }, resumedMs + 1);
    expect(n0.stateOf('n3')).toBe('alive');
    expect(n0.healthScore).toBeGreaterThan(0);
  });

  it('raises its health score when probes fail without nacks from the indirect probers, and then probes less often', () => {
    const members = settled(5);
    const n0 = members.get('n0') as SwimMember;
    // n0 hears nothing back from anyone: its own network (or CPU) is the trouble.
    const alone = new Set(['n1', 'n2', 'n3', 'n4']);
    const routed = runTicks(new Map([['n0', n0]]), startMs, startMs + 10_000, alone, new Set());
    expect(n0.healthScore).toBeGreaterThanOrEqual(3);
    const pingTimes = routed.sent.filter((sent) => sent.message.type === 'swim-ping').length;
    // Without the score there would be one probe a second (10); stretched timeouts give far fewer.
    expect(pingTimes).toBeLessThan(6);
  });
});

/** Ms from the start until every member other than `victim` holds it dead, with `victim` unreachable. */
function runTicksUntilDead(members: Map<string, SwimMember>, victim: string): number {
  const dead = new Set([victim]);
  for (let nowMs = startMs; nowMs <= startMs + 120_000; nowMs += defaultSwimConfig.tickIntervalMs) {
    for (const [id, member] of members) if (id !== victim) route(members, id, member.tick(nowMs), nowMs, dead);
    if ([...members].every(([id, member]) => id === victim || member.stateOf(victim) === 'dead')) return nowMs - startMs;
  }
  throw new Error(`${victim} not declared dead by every member within 120 s of virtual time`);
}

describe('SWIM dissemination within bounded messages', () => {
  it('never sends a message over maxMessageBytes, however much news is pending', () => {
    const members = settled(3);
    const n0 = members.get('n0') as SwimMember;
    const news = Array.from({ length: 2000 }, (_, index) => ({ ...recordOf(`n${1000 + index}`), address: `a-rather-long-address-${index}.example.com:7000` }));
    n0.receive({ type: 'swim-gossip', from: 'n1', updates: news }, startMs);
    expect(n0.pendingBroadcasts).toBeGreaterThan(1000);
    const routed = runTicks(members, startMs, startMs + 10_000);
    expect(routed.sent.length).toBeGreaterThan(10);
    for (const sent of routed.sent) expect(swimMessageBytes(sent.message), sent.message.type).toBeLessThanOrEqual(defaultSwimConfig.maxMessageBytes);
  });

  it('keeps its news queue within twice the live news under churn that outruns its sending', () => {
    const members = settled(3);
    const n0 = members.get('n0') as SwimMember;
    for (let round = 1; round <= 50; round++) {
      // 500 members change every round: far more news than 1 KiB messages carry away.
      n0.receive(
        { type: 'swim-gossip', from: 'n1', updates: Array.from({ length: 500 }, (_, index) => recordOf(`n${1000 + index}`, round)) },
        startMs + round * 1000,
      );
      route(members, 'n0', n0.tick(startMs + round * 1000), startMs + round * 1000);
      expect(n0.queuedBroadcastEntries).toBeLessThanOrEqual(2 * n0.pendingBroadcasts + 64);
    }
    expect(n0.pendingBroadcasts).toBeGreaterThanOrEqual(500);
  });

  it('sends liveness news (a suspicion, a death, a refutation) its full count of times before any of a backlog of churn news', () => {
    const members = settled(3);
    const n0 = members.get('n0') as SwimMember;
    const churn = (version: number): SwimRecord[] => Array.from({ length: 2000 }, (_, index) => recordOf(`n${1000 + index}`, version));
    n0.receive({ type: 'swim-gossip', from: 'n1', updates: churn(0) }, startMs);
    // n1500 suspected, n1600 declared dead, n1700, held suspect here, refutes at version 1, and n0 itself refutes a suspicion.
    n0.receive(
      {
        type: 'swim-gossip',
        from: 'n1',
        updates: [recordOf('n1500', 0, 'suspect', 'n2'), recordOf('n1700', 0, 'suspect', 'n2'), recordOf('n0', 0, 'suspect', 'n2')],
      },
      startMs,
    );
    n0.receive({ type: 'swim-gossip', from: 'n1', updates: [recordOf('n1600', 0, 'dead', 'n2'), recordOf('n1700', 1)] }, startMs);
    // Then more churn than the messages of the next seconds carry, all of it newer than the liveness news.
    n0.receive({ type: 'swim-gossip', from: 'n2', updates: churn(1).filter((record) => !['n1500', 'n1600', 'n1700'].includes(record.id)) }, startMs);
    const limit = defaultSwimConfig.retransmitMultiplier * Math.ceil(Math.log10(n0.liveMembers + 1));
    const sent = runTicks(members, startMs, startMs + 5_000).sent.filter((message) => message.from === 'n0');
    const carried = sent.map((message) => ('updates' in message.message ? message.message.updates : []));
    const sends = (id: string, state: SwimRecord['state']): number =>
      carried.filter((updates) => updates.some((update) => update.id === id && update.state === state)).length;
    const seen = `${sent.length} messages from n0`;
    expect(sends('n1500', 'suspect'), `${seen}: sends of n1500 suspect`).toBe(limit);
    expect(sends('n1600', 'dead'), `${seen}: sends of n1600 dead`).toBe(limit);
    expect(sends('n1700', 'alive'), `${seen}: sends of n1700 alive`).toBe(limit);
    expect(sends('n0', 'alive'), `${seen}: sends of n0 alive`).toBe(limit);
    // They went out in every message n0 sent with news until they were sent their count: none waited behind churn news.
    const firstChurnWithout = carried.findIndex((updates) => updates.length > 0 && !updates.some((update) => update.id === 'n1600'));
    expect(carried.slice(0, firstChurnWithout).filter((updates) => updates.length > 0).length, seen).toBe(limit);
  });

  it('sends only the newest queued record of a member: news replaced before it went out is never sent', () => {
    const members = settled(3);
    const n0 = members.get('n0') as SwimMember;
    for (let version = 1; version <= 3; version++) n0.receive({ type: 'swim-gossip', from: 'n1', updates: [recordOf('n1000', version)] }, startMs);
    expect(n0.pendingBroadcasts).toBe(2);
    const routed = runTicks(members, startMs, startMs + 20_000);
    const carried = routed.sent.filter((sent) => sent.from === 'n0').flatMap((sent) => ('updates' in sent.message ? sent.message.updates : []));
    const versions = carried.filter((record) => record.id === 'n1000').map((record) => record.version);
    expect(versions.length).toBeGreaterThan(0);
    expect(new Set(versions)).toEqual(new Set([3]));
  });

  it('a joiner pages through a seed of 3,000 members in capped windows and learns every one', () => {
    const random = new SeededRandom(7);
    const records = Array.from({ length: 3000 }, (_, index) => recordOf(`n${index}`));
    const seed = new SwimMember({
      id: 'n0',
      address: records[0]!.address,
      generation: 1,
      lifecycle: 'up',
      random: random.fork(),
      nowMs: startMs,
      members: records,
    });
    const joiner = new SwimMember({ id: 'n9999', address: '10.0.99.99:7000', generation: 1, lifecycle: 'joining', random: random.fork(), nowMs: startMs });
    const members = new Map([
      ['n0', seed],
      ['n9999', joiner],
    ]);
    const routed = route(members, 'n9999', joiner.join({ id: 'n0', address: records[0]!.address }, startMs), startMs);
    for (const record of records) expect(joiner.stateOf(record.id), record.id).toBe('alive');
    expect(seed.stateOf('n9999')).toBe('alive');
    for (const sent of routed.sent) expect(swimMessageBytes(sent.message)).toBeLessThanOrEqual(defaultSwimConfig.maxMessageBytes);
    // Each page was full: the pass took about table size / page size replies, not one per member.
    expect(routed.sent.length).toBeLessThan(3000 / 10);
  });

  it('repairs through digests a change whose news ran out before it reached a member', () => {
    const members = settled(4);
    // n1 knows a newer n3 (version 5) that nobody gossips any more.
    const n1 = new SwimMember({
      id: 'n1',
      address: recordOf('n1').address,
      generation: 1,
      lifecycle: 'up',
      random: new SeededRandom(3),
      nowMs: startMs,
      members: [0, 1, 2].map((index) => recordOf(`n${index}`)).concat([recordOf('n3', 5)]),
    });
    members.set('n1', n1);
    members.delete('n3');
    runTicks(members, startMs, startMs + 30_000, new Set(['n3']));
    expect(members.get('n0')?.recordOf('n3')?.version).toBe(5);
    expect(members.get('n2')?.recordOf('n3')?.version).toBe(5);
  });

  it('tells its engine when a peer holds a newer ring or bucket properties, which travel only as versions', () => {
    const members = settled(2);
    members.get('n1')?.setClusterStateVersions(7, 1234, 2);
    const routed = runTicks(members, startMs, startMs + 3000);
    const digests = routed.sent.filter((sent) => sent.message.type === 'swim-digest' || sent.message.type === 'swim-digest-reply');
    expect(digests.length).toBeGreaterThan(0);
    const n0 = members.get('n0') as SwimMember;
    const behind = n0.receive(
      { type: 'swim-digest', sequence: 1, from: 'n1', afterId: '', throughId: '', ringVersion: 7, ringHash: 1234, bucketPropertiesVersion: 2, entries: [] },
      startMs,
    );
    expect(behind).toContainEqual({ kind: 'cluster-state-behind', peer: 'n1', ringVersion: 7, bucketPropertiesVersion: 2 });
    // A ring of the same version that differs (two claimants, a partition) is noticed by its hash.
    n0.setClusterStateVersions(7, 99, 2);
    const differs = n0.receive(
      { type: 'swim-digest', sequence: 2, from: 'n1', afterId: '', throughId: '', ringVersion: 7, ringHash: 1234, bucketPropertiesVersion: 2, entries: [] },
      startMs,
    );
    expect(differs).toContainEqual({ kind: 'cluster-state-behind', peer: 'n1', ringVersion: 7, bucketPropertiesVersion: 2 });
    const same = n0.receive(
      { type: 'swim-digest', sequence: 3, from: 'n1', afterId: '', throughId: '', ringVersion: 7, ringHash: 99, bucketPropertiesVersion: 2, entries: [] },
      startMs,
    );
    expect(same.filter((effect) => effect.kind === 'cluster-state-behind')).toEqual([]);
  });

  it('makes a removal final: no later record of the member, of any generation, undoes it, and the removed member hears it and stays removed', () => {
    const members = settled(3);
    const n0 = members.get('n0') as SwimMember;
    n0.remove('n2', startMs);
    expect(n0.stateOf('n2')).toBe('removed');
    n0.receive({ type: 'swim-gossip', from: 'n1', updates: [{ ...recordOf('n2', 9), generation: 5 }] }, startMs);
    expect(n0.stateOf('n2')).toBe('removed');
    const n2 = members.get('n2') as SwimMember;
    n2.receive({ type: 'swim-gossip', from: 'n0', updates: [n0.recordOf('n2') as SwimRecord] }, startMs);
    expect(n2.record.state).toBe('removed');
    n2.receive({ type: 'swim-gossip', from: 'n1', updates: [{ ...recordOf('n2', 20), state: 'suspect' }] }, startMs);
    expect(n2.record.state).toBe('removed');
  });
});
