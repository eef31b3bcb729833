import { type TimedCall, checkKeyLinearizable, type KeyVerdict } from '../../jepsen-lite/src/checkers/linearizable.js';
import { type AcceptorReply, type AcceptorRequest, type AcceptorState, emptyAcceptorState, stepAcceptor } from '../../src/core/consensus/acceptor.js';
import { decodeAcceptorState, encodeAcceptorState } from '../../src/core/consensus/acceptor-codec.js';
import { type Ballot, type BallotIssuer, issueBallot, startBallotIssuer } from '../../src/core/consensus/ballot.js';
import type { BrokenVariant } from '../../src/core/consensus/broken-variants.js';
import { type RegisterOperation, type RegisterState, operationId } from '../../src/core/consensus/compare-and-set.js';
import { type ProposerEffect, type ProposerEvent, type ProposerState, startProposer, stepProposer } from '../../src/core/consensus/proposer.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';

/**
 * A deterministic simulation of the consensus core: acceptors and proposers exchange the core's
 * messages over a seeded network that delays, reorders, drops and duplicates them; acceptors
 * lose power (their unsynced state with it) and come back from what they persisted; proposers
 * pause mid-round and resume with stale ballots, or crash and abandon a round. Clients run
 * read-then-compare-and-set increments on a few keys; the history is judged by jepsen-lite's
 * linearizability checker (Wing–Gong–Lowe, per key) and by two direct checks: no acknowledged
 * increment is lost, and a read never returns an older version than one read before it began.
 * The same seed replays the same run.
 */

/** How a simulated run is shaped. */
export interface PaxosSimOptions {
  readonly seed: number;
  readonly acceptors: number;
  readonly clients: number;
  readonly keys: number;
  /** Increments each client attempts (each is a read, then a compare-and-set). */
  readonly incrementsPerClient: number;
  readonly dropRate: number;
  readonly duplicateRate: number;
  readonly maxDelayMs: number;
  /** Chance per acceptor request that the acceptor loses power afterwards (before or after answering). */
  readonly acceptorCrashRate: number;
  /** Chance per proposer event that the proposer pauses (a stop-the-world pause) for up to `pauseMs`. */
  readonly proposerPauseRate: number;
  readonly pauseMs: number;
  /** Chance per proposer event that the client process dies, abandoning its round. */
  readonly proposerCrashRate: number;
  readonly timeoutMs: number;
  readonly backoffMs: number;
  readonly broken?: BrokenVariant;
  /**
   * A ring change at `atMs`: `replaced` acceptors leave and as many new ones join (the old group
   * is a0..a(n-1), the new one a(replaced)..a(n-1+replaced)). `joint` is the documented way (joint quorums, then a repair round per key,
   * then the new group alone, each step a newer ring epoch); `direct` switches to the new group at
   * once, the broken way the simulation must catch.
   */
  readonly ringChange?: { readonly atMs: number; readonly mode: 'joint' | 'direct'; readonly replaced: number };
  /** Client 0 learns each ring change this much later than the others, as a node behind on gossip. */
  readonly ringLagMs?: number;
}

/** Defaults: three acceptors, five clients on two keys, every fault on. */
export const defaultSimOptions: Omit<PaxosSimOptions, 'seed'> = {
  acceptors: 3,
  clients: 5,
  keys: 2,
  incrementsPerClient: 12,
  dropRate: 0.05,
  duplicateRate: 0.05,
  maxDelayMs: 20,
  acceptorCrashRate: 0.01,
  proposerPauseRate: 0.01,
  pauseMs: 400,
  proposerCrashRate: 0.005,
  timeoutMs: 300,
  backoffMs: 10,
};

/** One operation of the history, as the client saw it. */
export interface SimOperation {
  readonly client: number;
  readonly key: string;
  readonly kind: 'read' | 'increment';
  readonly invokeMs: number;
  completeMs: number;
  outcome: 'pending' | 'ok' | 'refused' | 'fail' | 'unknown';
  /** For an increment, the counter it expected (null: absent) and wrote. */
  readonly from?: number | null;
  /** The state read, written, or refused on. */
  state?: RegisterState;
}

/** What a run produced and what the checks found. */
export interface PaxosSimResult {
  readonly history: readonly SimOperation[];
  readonly verdicts: readonly KeyVerdict[];
  /** Violations found by the direct checks (lost increments, reads going back, version and value disagreeing). */
  readonly violations: readonly string[];
  readonly counts: {
    ok: number;
    refused: number;
    fail: number;
    unknown: number;
    acceptorCrashes: number;
    proposerPauses: number;
    proposerCrashes: number;
    messages: number;
  };
  /** True when every check passed. */
  readonly valid: boolean;
  /** The ring epoch at the end: 1 without a ring change, 3 after a completed joint change. */
  readonly ringEpoch: number;
}

type Delivery =
  | {
      readonly kind: 'to-acceptor';
      readonly acceptor: string;
      readonly key: string;
      readonly client: number;
      readonly operation: number;
      readonly request: AcceptorRequest;
    }
  | { readonly kind: 'to-proposer'; readonly client: number; readonly operation: number; readonly event: ProposerEvent }
  | { readonly kind: 'acceptor-restart'; readonly acceptor: string }
  | { readonly kind: 'client-next'; readonly client: number }
  | { readonly kind: 'ring-change' }
  | { readonly kind: 'handoff'; readonly key: string };

interface Scheduled {
  readonly atMs: number;
  readonly sequence: number;
  readonly delivery: Delivery;
}

interface SimAcceptor {
  up: boolean;
  readonly memory: Map<string, AcceptorState>;
  readonly disk: Map<string, Buffer>;
}

interface SimClient {
  incarnation: number;
  issuer: BallotIssuer;
  pausedUntilMs: number;
  readonly knownRound: Map<string, number>;
  remaining: number;
  /** A handoff worker runs one repair round per key of a ring change instead of increments. */
  readonly handoff: boolean;
  /** The running operation: its history index and proposer state. */
  current: { index: number; state: ProposerState } | undefined;
}

const counterOf = (state: RegisterState): number | null => (state.value === null ? null : Number(Buffer.from(state.value).toString()));
const encodeCounter = (value: number): Uint8Array => Buffer.from(String(value));

/** Runs one simulated history and checks it. */
export function runPaxosSim(options: PaxosSimOptions): PaxosSimResult {
  const random = new SeededRandom(options.seed);
  const acceptorIds = Array.from({ length: options.acceptors + (options.ringChange?.replaced ?? 0) }, (_, index) => `a${index}`);
  const oldGroup = acceptorIds.slice(0, options.acceptors);
  const newGroup = acceptorIds.slice(acceptorIds.length - options.acceptors);
  // The ring as proposers see it when an operation starts: a paused proposer keeps the one it started with.
  let ring: { epoch: number; groups: string[][] } = { epoch: 1, groups: [oldGroup] };
  const ringHistory: { atMs: number; ring: typeof ring }[] = [{ atMs: 0, ring }];
  const setRing = (next: typeof ring): void => {
    ring = next;
    ringHistory.push({ atMs: nowMs, ring });
  };
  /** The ring a client sees now: client 0 lags behind by ringLagMs. */
  const ringOf = (clientIndex: number): typeof ring => {
    const seenAtMs = nowMs - (clientIndex === 0 && !healed ? (options.ringLagMs ?? 0) : 0);
    return [...ringHistory].reverse().find((entry) => entry.atMs <= seenAtMs)?.ring ?? (ringHistory[0] as (typeof ringHistory)[number]).ring;
  };
  const handedOff = new Set<string>();
  const keys = Array.from({ length: options.keys }, (_, index) => `k${index}`);
  const acceptors = new Map<string, SimAcceptor>(acceptorIds.map((id) => [id, { up: true, memory: new Map(), disk: new Map() }]));
  const clients: SimClient[] = Array.from({ length: options.clients }, (_, index) => ({
    incarnation: 0,
    issuer: startBallotIssuer(`c${index}#0`),
    pausedUntilMs: 0,
    knownRound: new Map(),
    remaining: options.incrementsPerClient,
    handoff: false,
    current: undefined,
  }));
  // One extra client does the handoff of a ring change.
  const handoffClient = clients.length;
  clients.push({
    incarnation: 0,
    issuer: startBallotIssuer('handoff#0'),
    pausedUntilMs: 0,
    knownRound: new Map(),
    remaining: 0,
    handoff: true,
    current: undefined,
  });
  const history: SimOperation[] = [];
  const counts = { ok: 0, refused: 0, fail: 0, unknown: 0, acceptorCrashes: 0, proposerPauses: 0, proposerCrashes: 0, messages: 0 };
  const queue: Scheduled[] = [];
  let sequence = 0;
  let nowMs = 0;
  let healed = false;

  const schedule = (atMs: number, delivery: Delivery): void => {
    // A binary heap on (atMs, sequence): equal times keep their order, so a run replays exactly.
    const item = { atMs, sequence: sequence++, delivery };
    queue.push(item);
    let index = queue.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (before(queue[parent] as Scheduled, item)) break;
      queue[index] = queue[parent] as Scheduled;
      index = parent;
    }
    queue[index] = item;
  };
  const take = (): Scheduled | undefined => {
    const top = queue[0];
    const last = queue.pop();
    if (top === undefined || last === undefined || queue.length === 0) return top;
    let index = 0;
    for (;;) {
      const left = index * 2 + 1;
      const right = left + 1;
      let smallest = index;
      let candidate = last;
      if (left < queue.length && before(queue[left] as Scheduled, candidate)) {
        smallest = left;
        candidate = queue[left] as Scheduled;
      }
      if (right < queue.length && before(queue[right] as Scheduled, candidate)) smallest = right;
      if (smallest === index) break;
      queue[index] = queue[smallest] as Scheduled;
      index = smallest;
    }
    queue[index] = last;
    return top;
  };

  /** Sends over the faulty network: maybe dropped, maybe twice, each copy after its own delay. */
  const send = (delivery: Delivery): void => {
    counts.messages += 1;
    const faulty = !healed;
    if (faulty && random.next() < options.dropRate) return;
    const copies = faulty && random.next() < options.duplicateRate ? 2 : 1;
    for (let copy = 0; copy < copies; copy++) schedule(nowMs + 1 + random.int(options.maxDelayMs), delivery);
  };

  const acceptorState = (acceptor: SimAcceptor, key: string): AcceptorState => {
    const inMemory = acceptor.memory.get(key);
    if (inMemory !== undefined) return inMemory;
    const onDisk = acceptor.disk.get(key);
    return onDisk === undefined ? emptyAcceptorState : decodeAcceptorState(onDisk);
  };

  const crashAcceptor = (id: string, acceptor: SimAcceptor): void => {
    // Power loss: memory is gone; only what was persisted comes back.
    acceptor.up = false;
    acceptor.memory.clear();
    counts.acceptorCrashes += 1;
    schedule(nowMs + 1 + random.int(options.pauseMs), { kind: 'acceptor-restart', acceptor: id });
  };

  const onAcceptorRequest = (delivery: Extract<Delivery, { kind: 'to-acceptor' }>): void => {
    const acceptor = acceptors.get(delivery.acceptor) as SimAcceptor;
    const ballot = requestBallot(delivery.request);
    if (!acceptor.up) {
      // A down node refuses connections half the time and is silent the other half.
      if (random.next() < 0.5)
        send({ kind: 'to-proposer', client: delivery.client, operation: delivery.operation, event: { type: 'unreachable', from: delivery.acceptor, ballot } });
      return;
    }
    const step = stepAcceptor(acceptorState(acceptor, delivery.key), delivery.request, options.broken);
    acceptor.memory.set(delivery.key, step.state);
    // The acceptor fsyncs what it must before answering; power may go before or after the answer.
    if (step.persist !== null) acceptor.disk.set(delivery.key, encodeAcceptorState(step.persist));
    const crash = !healed && random.next() < options.acceptorCrashRate;
    const crashBeforeReply = crash && random.next() < 0.5;
    if (crashBeforeReply) return crashAcceptor(delivery.acceptor, acceptor);
    if (step.reply !== null)
      send({
        kind: 'to-proposer',
        client: delivery.client,
        operation: delivery.operation,
        event: { type: 'answer', from: delivery.acceptor, reply: step.reply },
      });
    if (crash) crashAcceptor(delivery.acceptor, acceptor);
  };

  const learnRounds = (client: SimClient, key: string, reply: AcceptorReply): void => {
    const rounds = [reply.ballot.round];
    if (reply.type === 'prepare-rejected' || reply.type === 'propose-rejected') rounds.push(reply.promised.round);
    if (reply.type === 'promise') rounds.push(reply.accepted?.ballot.round ?? 0, reply.committed?.ballot.round ?? 0);
    client.knownRound.set(key, Math.max(client.knownRound.get(key) ?? 0, ...rounds));
  };

  const issue = (client: SimClient, key: string, atLeastRound: number): Ballot => {
    const [issuer, ballot] = issueBallot(client.issuer, atLeastRound);
    client.issuer = issuer;
    return ballot;
  };

  const startOperation = (clientIndex: number, key: string, kind: 'read' | 'increment', operation: RegisterOperation, from?: number | null): void => {
    const client = clients[clientIndex] as SimClient;
    const index = history.length;
    history.push({ client: clientIndex, key, kind, invokeMs: nowMs, completeMs: Infinity, outcome: 'pending', ...(from === undefined ? {} : { from }) });
    const seen = ringOf(clientIndex);
    const config = {
      groups: seen.groups,
      epoch: seen.epoch,
      timeoutMs: options.timeoutMs,
      backoffMs: options.backoffMs,
      operationId: operationId(client.issuer.proposer, index),
      ...(options.broken === undefined ? {} : { broken: options.broken }),
    };
    const state = startProposer(config, operation);
    client.current = { index, state };
    feed(clientIndex, index, { type: 'start', nowMs, ballot: issue(client, key, (client.knownRound.get(key) ?? 0) + 1) });
  };

  const complete = (clientIndex: number, index: number, outcome: SimOperation['outcome'], state?: RegisterState): void => {
    const operation = history[index] as SimOperation;
    operation.outcome = outcome;
    if (outcome !== 'unknown') operation.completeMs = nowMs;
    if (state !== undefined) operation.state = state;
    const client = clients[clientIndex] as SimClient;
    client.current = undefined;
    if (outcome === 'ok') counts.ok += 1;
    else if (outcome === 'refused') counts.refused += 1;
    else if (outcome === 'fail') counts.fail += 1;
    else counts.unknown += 1;
    if (client.handoff) {
      // The repair round of a key is done: once every key's is, the ring drops the old group.
      if (outcome === 'ok') handedOff.add(operation.key);
      else schedule(nowMs + 1 + random.int(options.maxDelayMs), { kind: 'handoff', key: operation.key });
      if (handedOff.size === keys.length && ring.groups.length === 2) setRing({ epoch: ring.epoch + 1, groups: [newGroup] });
      return;
    }
    // A successful read is followed by the increment it read for; anything else starts over.
    if (operation.kind === 'read' && outcome === 'ok' && state !== undefined && !healed) {
      const current = counterOf(state);
      const condition = current === null ? ({ kind: 'absent' } as const) : ({ kind: 'version', version: state.version } as const);
      return startOperation(clientIndex, operation.key, 'increment', { kind: 'write', value: encodeCounter((current ?? 0) + 1), condition }, current);
    }
    // Every operation but a successful read (whose increment follows) uses up one of the client's turns.
    client.remaining -= 1;
    if (!healed) schedule(nowMs + random.int(options.maxDelayMs), { kind: 'client-next', client: clientIndex });
  };

  const feed = (clientIndex: number, index: number, event: ProposerEvent): void => {
    const client = clients[clientIndex] as SimClient;
    if (client.current === undefined || client.current.index !== index) return;
    const [state, effects] = stepProposer(client.current.state, event);
    client.current.state = state;
    for (const effect of effects) carryOut(clientIndex, index, effect);
  };

  const carryOut = (clientIndex: number, index: number, effect: ProposerEffect): void => {
    const client = clients[clientIndex] as SimClient;
    const key = (history[index] as SimOperation).key;
    switch (effect.type) {
      case 'arm-deadline':
        schedule(effect.atMs, { kind: 'to-proposer', client: clientIndex, operation: index, event: { type: 'deadline' } });
        return;
      case 'send':
        send({ kind: 'to-acceptor', acceptor: effect.to, key, client: clientIndex, operation: index, request: effect.request });
        return;
      case 'back-off': {
        const ballot = issue(client, key, Math.max(effect.atLeastRound, (client.knownRound.get(key) ?? 0) + 1));
        schedule(nowMs + random.int(Math.max(1, effect.maxDelayMs)), {
          kind: 'to-proposer',
          client: clientIndex,
          operation: index,
          event: { type: 'retry', ballot },
        });
        return;
      }
      case 'reply':
        return complete(clientIndex, index, effect.result.outcome === 'precondition-failed' ? 'refused' : 'ok', effect.result.state);
      case 'fail':
        return complete(clientIndex, index, effect.applied === 'unknown' ? 'unknown' : 'fail');
    }
  };

  const onProposerDelivery = (delivery: Extract<Delivery, { kind: 'to-proposer' }>): void => {
    const client = clients[delivery.client] as SimClient;
    if (client.pausedUntilMs > nowMs) {
      // A paused process handles nothing until it resumes; then it handles everything in order.
      schedule(client.pausedUntilMs, delivery);
      return;
    }
    if (client.current === undefined || client.current.index !== delivery.operation) return;
    if (delivery.event.type === 'answer') learnRounds(client, (history[delivery.operation] as SimOperation).key, delivery.event.reply);
    if (!healed && random.next() < options.proposerCrashRate) {
      // The client process dies mid-round: its operation's outcome is unknown forever; it comes
      // back as a new incarnation, so it never reuses a ballot it may have sent before.
      const index = delivery.operation;
      counts.proposerCrashes += 1;
      client.incarnation += 1;
      client.issuer = startBallotIssuer(`c${delivery.client}#${client.incarnation}`);
      client.knownRound.clear();
      return complete(delivery.client, index, 'unknown');
    }
    if (!healed && random.next() < options.proposerPauseRate) {
      counts.proposerPauses += 1;
      client.pausedUntilMs = nowMs + 1 + random.int(options.pauseMs);
      // The event that was being handled is handled after the pause.
      schedule(client.pausedUntilMs, delivery);
      return;
    }
    feed(delivery.client, delivery.operation, delivery.event);
  };

  const onClientNext = (clientIndex: number): void => {
    const client = clients[clientIndex] as SimClient;
    if (client.remaining <= 0 || client.current !== undefined) return;
    const key = keys[random.int(keys.length)] as string;
    startOperation(clientIndex, key, 'read', { kind: 'read' });
  };

  clients.forEach((client, index) => {
    if (!client.handoff) schedule(random.int(options.maxDelayMs), { kind: 'client-next', client: index });
  });
  if (options.ringChange !== undefined) schedule(options.ringChange.atMs, { kind: 'ring-change' });
  const onRingChange = (): void => {
    if (options.ringChange?.mode === 'direct') {
      setRing({ epoch: ring.epoch + 1, groups: [newGroup] });
      return;
    }
    setRing({ epoch: ring.epoch + 1, groups: [oldGroup, newGroup] });
    for (const key of keys) schedule(nowMs, { kind: 'handoff', key });
  };
  const run = (): void => {
    for (let item = take(); item !== undefined; item = take()) {
      nowMs = Math.max(nowMs, item.atMs);
      const delivery = item.delivery;
      switch (delivery.kind) {
        case 'to-acceptor':
          onAcceptorRequest(delivery);
          break;
        case 'to-proposer':
          onProposerDelivery(delivery);
          break;
        case 'acceptor-restart':
          (acceptors.get(delivery.acceptor) as SimAcceptor).up = true;
          break;
        case 'client-next':
          onClientNext(delivery.client);
          break;
        case 'ring-change':
          onRingChange();
          break;
        case 'handoff':
          // The handoff worker runs one round at a time; a key whose turn comes while it is busy waits.
          if ((clients[handoffClient] as SimClient).current !== undefined) schedule(nowMs + 1 + random.int(options.maxDelayMs), delivery);
          else startOperation(handoffClient, delivery.key, 'read', { kind: 'repair' });
          break;
      }
    }
  };
  run();

  // Heal everything, then read every key until a read succeeds: the final state of each counter.
  healed = true;
  for (const acceptor of acceptors.values()) acceptor.up = true;
  for (const key of keys) {
    for (let attempt = 0; attempt < 20; attempt++) {
      const reader = clients[0] as SimClient;
      reader.pausedUntilMs = 0;
      startOperation(0, key, 'read', { kind: 'read' });
      run();
      if ((history[history.length - 1] as SimOperation).outcome === 'ok') break;
    }
  }
  return { ...judge(history, keys, counts), ringEpoch: ring.epoch };
}

function before(left: Scheduled, right: Scheduled): boolean {
  return left.atMs < right.atMs || (left.atMs === right.atMs && left.sequence < right.sequence);
}

function requestBallot(request: AcceptorRequest): Ballot {
  return request.type === 'prepare' ? request.ballot : request.proposal.ballot;
}

/** The register calls of one key's history, as jepsen-lite's checker takes them. */
function timedCalls(history: readonly SimOperation[], key: string): TimedCall[] {
  const calls: TimedCall[] = [];
  history.forEach((operation, index) => {
    if (operation.key !== key || operation.outcome === 'fail' || operation.outcome === 'pending') return;
    if (operation.kind === 'read') {
      if (operation.outcome !== 'ok') return;
      calls.push({
        call: { f: 'read', value: counterOf(operation.state as RegisterState) },
        index,
        invokeMs: operation.invokeMs,
        completeMs: operation.completeMs,
      });
      return;
    }
    const from = operation.from ?? null;
    const to = (from ?? 0) + 1;
    const call = operation.outcome === 'refused' ? ({ f: 'cas-refused', from } as const) : ({ f: 'cas', from, to } as const);
    calls.push({ call, index, invokeMs: operation.invokeMs, completeMs: operation.outcome === 'unknown' ? Infinity : operation.completeMs });
  });
  return calls;
}

function judge(history: readonly SimOperation[], keys: readonly string[], counts: PaxosSimResult['counts']): Omit<PaxosSimResult, 'ringEpoch'> {
  const violations: string[] = [];
  const verdicts = keys.map((key) => checkKeyLinearizable(key, timedCalls(history, key)));
  for (const key of keys) {
    const operations = history.filter((operation) => operation.key === key);
    // Every state answered has as many writes (its version) as its counter says: increments only.
    for (const operation of operations) {
      if (operation.state === undefined) continue;
      const counter = counterOf(operation.state) ?? 0;
      if (counter !== operation.state.version)
        violations.push(`${key}: a ${operation.kind} at ${operation.invokeMs} ms answered version ${operation.state.version} with counter ${counter}`);
    }
    const okIncrements = operations.filter((operation) => operation.kind === 'increment' && operation.outcome === 'ok').length;
    const unknownIncrements = operations.filter((operation) => operation.kind === 'increment' && operation.outcome === 'unknown').length;
    const finalRead = [...operations].reverse().find((operation) => operation.kind === 'read' && operation.outcome === 'ok');
    const final = finalRead === undefined ? undefined : (counterOf(finalRead.state as RegisterState) ?? 0);
    if (final === undefined) violations.push(`${key}: no final read succeeded after healing`);
    else if (final < okIncrements || final > okIncrements + unknownIncrements) {
      violations.push(`${key}: the final counter is ${final} but ${okIncrements} increments were acknowledged and ${unknownIncrements} are unknown`);
    }
    // A read that began after another ended never sees an older version.
    const reads = operations.filter((operation) => operation.kind === 'read' && operation.outcome === 'ok');
    for (const later of reads) {
      const newest = reads
        .filter((earlier) => earlier.completeMs < later.invokeMs)
        .reduce((most, earlier) => Math.max(most, (earlier.state as RegisterState).version), 0);
      if ((later.state as RegisterState).version < newest)
        violations.push(`${key}: a read at ${later.invokeMs} ms saw version ${(later.state as RegisterState).version} after an earlier read saw ${newest}`);
    }
  }
  const valid = violations.length === 0 && verdicts.every((verdict) => verdict.verdict === 'valid');
  return { history, verdicts, violations, counts, valid };
}
