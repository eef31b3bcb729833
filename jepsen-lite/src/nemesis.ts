/**
 * The nemesis: Jepsen's fault injector. Its schedule is planned up front from the seed, so a
 * run's faults (which, on whom, and when) replay exactly; real timing still varies from run to
 * run, and so does what the faults catch. One fault is in force at a time, and a kill or pause
 * takes down at most a minority, so the cluster can always make progress somewhere.
 */
import type { Random } from '../../src/ports/random.js';
import type { FaultName } from './cli-options.js';
import type { Cluster, ClusterNode } from './cluster.js';
import type { HistoryRecorder } from './history.js';

/**
 * The network the nemesis acts on: the loopback link proxies (src/proxy.ts LinkNetwork) or the
 * network namespaces (src/netns-faults.ts). `degrade` (latency, loss) exists only for namespaces.
 */
export interface FaultNetwork {
  /** Cuts both directions between each pair (0-based slots); every other fault on the links ends. */
  partition(blockedPairs: readonly (readonly [number, number])[]): void | Promise<void>;
  /** Ends every link fault. */
  healAll(): void | Promise<void>;
  /** Slows or drops the packets of the links of `fault.nodes`. */
  degrade?(fault: Extract<Fault, { kind: 'latency' | 'loss' }>): Promise<void>;
}

/** The shapes of network partition. */
export type PartitionShape = 'halves' | 'majority' | 'isolate' | 'bridge' | 'ring';

/** A fault, with its targets as 0-based node indexes. */
export type Fault =
  | {
      readonly kind: 'partition';
      readonly shape: PartitionShape;
      /** Unordered node pairs that cannot talk. */
      readonly blocked: readonly (readonly [number, number])[];
      /** Who can talk to whom, for people: the groups (overlapping for bridge and ring). */
      readonly groups: readonly (readonly number[])[];
    }
  | { readonly kind: 'kill' | 'pause'; readonly nodes: readonly number[] }
  | {
      /** Every packet on a link with an end in `nodes` waits delayMs ± jitterMs (tc netem), each direction. */
      readonly kind: 'latency';
      readonly nodes: readonly number[];
      readonly delayMs: number;
      readonly jitterMs: number;
    }
  | {
      /** Every packet on a link with an end in `nodes` is dropped with probability percent/100 (iptables statistic), each direction. */
      readonly kind: 'loss';
      readonly nodes: readonly number[];
      readonly percent: number;
    }
  | {
      readonly kind: 'clock';
      /** The nodes whose wall clock jumps at the start, and jumps back to true time at the stop. */
      readonly nodes: readonly number[];
      /** Each node's offset from true time while the fault is in force, in ms (same order as `nodes`). */
      readonly offsetsMs: readonly number[];
    }
  | {
      readonly kind: 'membership';
      /**
       * `join`: a spare slot starts fresh and joins; `leave`: `ringkv leave` decommissions the
       * node; `remove`: the node is killed, judged down, removed with `ringkv remove` through
       * `via`, and when the fault stops its process is brought back on its old disk (it must then
       * serve nothing). A membership change is not undone: the cluster is different afterwards.
       */
      readonly action: 'join' | 'leave' | 'remove';
      readonly node: number;
      /** The live member that carries out a `remove`. */
      readonly via?: number;
    };

/** Who is in the cluster, as the schedule planner follows it from fault to fault. */
export interface MembershipModel {
  /** Slots that are members now, ascending. */
  readonly members: readonly number[];
  /** Slots never started yet, ascending. */
  readonly spares: readonly number[];
}

/** The membership of a cluster of `nodeCount` nodes with `spareCount` spare slots after them. */
export function initialMembership(nodeCount: number, spareCount: number): MembershipModel {
  return {
    members: Array.from({ length: nodeCount }, (_, index) => index),
    spares: Array.from({ length: spareCount }, (_, index) => nodeCount + index),
  };
}

/**
 * The fewest members the membership nemesis leaves: one below the starting size (never below 3),
 * so a leave or remove always leaves n_val = 3 replicas and a kill still takes only a minority.
 */
export function minimumMembers(nodeCount: number): number {
  return Math.max(3, nodeCount - 1);
}

/** A seeded membership change that the model allows: join while a spare is left, leave or remove while above the minimum. */
export function planMembership(model: MembershipModel, nodeCount: number, random: Random): Fault | undefined {
  const actions: ('join' | 'leave' | 'remove')[] = [];
  if (model.spares.length > 0) actions.push('join');
  if (model.members.length > minimumMembers(nodeCount)) actions.push('leave', 'remove');
  if (actions.length === 0) return undefined;
  const action = actions[random.int(actions.length)] as 'join' | 'leave' | 'remove';
  if (action === 'join') return { kind: 'membership', action, node: model.spares[0] as number };
  const order = shuffled(model.members.length, random).map((place) => model.members[place] as number);
  const [node, via] = order as [number, number];
  return action === 'remove' ? { kind: 'membership', action, node, via } : { kind: 'membership', action, node };
}

/** The model after `fault`. */
export function applyMembership(model: MembershipModel, fault: Fault): MembershipModel {
  if (fault.kind !== 'membership') return model;
  if (fault.action === 'join') {
    return { members: sorted([...model.members, fault.node]), spares: model.spares.filter((slot) => slot !== fault.node) };
  }
  return { members: model.members.filter((slot) => slot !== fault.node), spares: model.spares };
}

/** A fault planned over `members.length` nodes, renamed to the members' slots. */
function onMembers(fault: Fault, members: readonly number[]): Fault {
  const slot = (place: number): number => members[place] as number;
  if (fault.kind === 'partition') {
    return {
      ...fault,
      blocked: fault.blocked.map(([a, b]) => [Math.min(slot(a), slot(b)), Math.max(slot(a), slot(b))] as const),
      groups: fault.groups.map((group) => sorted(group.map(slot))),
    };
  }
  if (fault.kind === 'kill' || fault.kind === 'pause' || fault.kind === 'latency' || fault.kind === 'loss')
    return { ...fault, nodes: sorted(fault.nodes.map(slot)) };
  // Slots keep the members' order, so the offsets stay beside their nodes.
  if (fault.kind === 'clock') return { ...fault, nodes: fault.nodes.map(slot) };
  return fault;
}

/** One step of the schedule: a fault starts or stops `atMs` after the workload starts. */
export interface NemesisEvent {
  readonly atMs: number;
  readonly action: 'start' | 'stop';
  readonly fault: Fault;
}

/** A random permutation of 0..count-1 (Fisher-Yates). */
function shuffled(count: number, random: Random): number[] {
  const order = Array.from({ length: count }, (_, index) => index);
  for (let index = count - 1; index > 0; index--) {
    const other = random.int(index + 1);
    [order[index], order[other]] = [order[other] as number, order[index] as number];
  }
  return order;
}

/** Every pair (a, b) with a in `left` and b in `right`, a != b. */
function pairsBetween(left: readonly number[], right: readonly number[]): [number, number][] {
  const pairs: [number, number][] = [];
  for (const a of left) for (const b of right) if (a !== b) pairs.push([Math.min(a, b), Math.max(a, b)]);
  return pairs;
}

/** The largest minority of `nodeCount` nodes. */
export function largestMinority(nodeCount: number): number {
  return Math.floor((nodeCount - 1) / 2);
}

/**
 * A partition of `nodeCount` nodes, as Jepsen's nemeses cut them:
 * `halves` random halves; `majority` a random minority (1 up to the largest minority) from the
 * rest; `isolate` one node from all others; `bridge` two halves with one node that sees both
 * (Jepsen's bridge); `ring` every node sees a majority, its neighbours on a random ring, but no
 * two nodes see the same majority (Jepsen's majorities ring).
 */
export function planPartition(shape: PartitionShape, nodeCount: number, random: Random): Fault {
  const order = shuffled(nodeCount, random);
  const split = (size: number): Fault => {
    const left = order.slice(0, size);
    const right = order.slice(size);
    return { kind: 'partition', shape, blocked: pairsBetween(left, right), groups: [sorted(left), sorted(right)] };
  };
  switch (shape) {
    case 'halves':
      return split(Math.floor(nodeCount / 2));
    case 'majority':
      return split(1 + random.int(Math.max(1, largestMinority(nodeCount))));
    case 'isolate':
      return split(1);
    case 'bridge': {
      const [bridge, ...rest] = order as [number, ...number[]];
      const half = Math.floor(rest.length / 2);
      const left = rest.slice(0, half);
      const right = rest.slice(half);
      return { kind: 'partition', shape, blocked: pairsBetween(left, right), groups: [sorted([...left, bridge]), sorted([bridge, ...right])] };
    }
    case 'ring': {
      // Each node keeps its `reach` nearest ring neighbours on either side: itself and 2*reach
      // others make a majority.
      const majority = Math.floor(nodeCount / 2) + 1;
      const reach = Math.ceil((majority - 1) / 2);
      const position = new Map(order.map((node, place) => [node, place]));
      const blocked: [number, number][] = [];
      const groups: number[][] = [];
      for (let a = 0; a < nodeCount; a++) {
        const seen = [a];
        for (let b = 0; b < nodeCount; b++) {
          if (a === b) continue;
          const gap = Math.abs((position.get(a) as number) - (position.get(b) as number));
          const distance = Math.min(gap, nodeCount - gap);
          if (distance > reach) {
            if (a < b) blocked.push([a, b]);
          } else seen.push(b);
        }
        groups.push(sorted(seen));
      }
      return { kind: 'partition', shape, blocked, groups };
    }
  }
}

function sorted(nodes: readonly number[]): number[] {
  return [...nodes].sort((left, right) => left - right);
}

const randomShapes: readonly PartitionShape[] = ['halves', 'majority', 'isolate', 'bridge', 'ring'];

/** The smallest and largest clock offset the clock nemesis sets, either way, in whole seconds (libfaketime's `+Ns`). */
export const clockOffsetRangeS = { min: 2, max: 60 } as const;

/**
 * A clock fault: 1 to ⌈N/2⌉ nodes (a bad clock does not take a node down, so a majority may be
 * wrong) get a wall clock ahead of or behind true time by 2 to 60 whole seconds.
 */
export function planClock(nodeCount: number, random: Random): Fault {
  const count = 1 + random.int(Math.ceil(nodeCount / 2));
  const nodes = sorted(shuffled(nodeCount, random).slice(0, count));
  const offsetsMs = nodes.map(
    () => (random.next() < 0.5 ? -1 : 1) * (clockOffsetRangeS.min + random.int(clockOffsetRangeS.max - clockOffsetRangeS.min + 1)) * 1000,
  );
  return { kind: 'clock', nodes, offsetsMs };
}

/** The delays the latency nemesis picks from (50, 100, ... ms), and its jitter: a fifth of the delay. */
export const latencyRangeMs = { min: 50, max: 500, step: 50 } as const;
/** The packet loss the loss nemesis picks from, in whole percent. */
export const lossRangePercent = { min: 5, max: 40 } as const;

/**
 * A latency or loss fault: the links of 1 to N random nodes (each link with at least one end
 * among them) get a delay of 50..500 ms (± a fifth), or lose 5..40 % of their packets.
 */
export function planLinkFault(kind: 'latency' | 'loss', nodeCount: number, random: Random): Fault {
  const count = 1 + random.int(nodeCount);
  const nodes = sorted(shuffled(nodeCount, random).slice(0, count));
  if (kind === 'loss') return { kind, nodes, percent: lossRangePercent.min + random.int(lossRangePercent.max - lossRangePercent.min + 1) };
  const steps = (latencyRangeMs.max - latencyRangeMs.min) / latencyRangeMs.step + 1;
  const delayMs = latencyRangeMs.min + latencyRangeMs.step * random.int(steps);
  return { kind, nodes, delayMs, jitterMs: Math.round(delayMs / 5) };
}

/** A fault of the named kind with seeded targets. */
export function planFault(name: Exclude<FaultName, 'membership'>, nodeCount: number, random: Random): Fault {
  if (name === 'clock') return planClock(nodeCount, random);
  if (name === 'latency' || name === 'loss') return planLinkFault(name, nodeCount, random);
  if (name === 'kill' || name === 'pause') {
    const count = 1 + random.int(Math.max(1, largestMinority(nodeCount)));
    return { kind: name, nodes: sorted(shuffled(nodeCount, random).slice(0, count)) };
  }
  const shape = name === 'partition' ? (randomShapes[random.int(randomShapes.length)] as PartitionShape) : (name.slice('partition-'.length) as PartitionShape);
  return planPartition(shape, nodeCount, random);
}

/** The settings of a schedule. */
export interface ScheduleOptions {
  readonly faults: readonly FaultName[];
  readonly nodeCount: number;
  readonly timeLimitMs: number;
  /** Mean length of a fault and of the quiet spell before it; each is drawn from [0.5, 1.5) times it. */
  readonly intervalMs: number;
  /** Spare slots after the first `nodeCount` that `membership` may join (default 0). */
  readonly spareCount?: number;
}

/**
 * Jepsen's usual nemesis cycle, seeded: quiet, start a fault, wait, stop it, and again, until the
 * time limit. Each fault is one of `faults`, picked at random. A fault still in force at the
 * time limit has no stop event; the runner heals everything then.
 */
export function planNemesisSchedule(options: ScheduleOptions, random: Random): NemesisEvent[] {
  const events: NemesisEvent[] = [];
  if (options.faults.length === 0) return events;
  const jitter = (): number => Math.round(options.intervalMs * (0.5 + random.next()));
  // Faults are planned over today's members, so a kill or pause takes a minority of them and a
  // partition splits them; a membership change moves the model on.
  let model = initialMembership(options.nodeCount, options.spareCount ?? 0);
  let atMs = jitter();
  while (atMs < options.timeLimitMs) {
    const name = options.faults[random.int(options.faults.length)] as FaultName;
    const planned =
      name === 'membership' ? planMembership(model, options.nodeCount, random) : onMembers(planFault(name, model.members.length, random), model.members);
    // No membership change is possible (no spare, at the minimum): that turn stays quiet.
    if (planned === undefined) {
      atMs += jitter();
      continue;
    }
    const fault = planned;
    model = applyMembership(model, fault);
    events.push({ atMs, action: 'start', fault });
    const stopMs = atMs + jitter();
    if (stopMs >= options.timeLimitMs) break;
    events.push({ atMs: stopMs, action: 'stop', fault });
    atMs = stopMs + jitter();
  }
  return events;
}

/** How a fault appears in the history and on the terminal: node names instead of indexes. */
export function describeFault(fault: Fault, names: readonly string[]): Record<string, unknown> {
  const name = (node: number): string => names[node] ?? `#${node}`;
  if (fault.kind === 'partition') {
    return {
      kind: 'partition',
      grudge: fault.shape,
      groups: fault.groups.map((group) => group.map(name)),
      cut: fault.blocked.map(([a, b]) => `${name(a)}-${name(b)}`),
    };
  }
  if (fault.kind === 'clock')
    return { kind: 'clock', offsetsMs: Object.fromEntries(fault.nodes.map((node, place) => [name(node), fault.offsetsMs[place] ?? 0])) };
  if (fault.kind === 'membership')
    return { kind: 'membership', action: fault.action, node: name(fault.node), ...(fault.via === undefined ? {} : { via: name(fault.via) }) };
  if (fault.kind === 'latency') return { kind: 'latency', nodes: fault.nodes.map(name), delayMs: fault.delayMs, jitterMs: fault.jitterMs };
  if (fault.kind === 'loss') return { kind: 'loss', nodes: fault.nodes.map(name), percent: fault.percent };
  return { kind: fault.kind, nodes: fault.nodes.map(name) };
}

function clockText(offsetMs: number): string {
  return `${offsetMs >= 0 ? '+' : '-'}${(Math.abs(offsetMs) / 1000).toFixed(1)}s`;
}

/** A one-line description of a fault for the terminal. */
export function faultSummary(fault: Fault, names: readonly string[]): string {
  const name = (node: number): string => names[node] ?? `#${node}`;
  if (fault.kind === 'partition') return `partition ${fault.shape} ${fault.groups.map((group) => `{${group.map(name).join(',')}}`).join(' ')}`;
  if (fault.kind === 'clock') return `clock ${fault.nodes.map((node, place) => `${name(node)} ${clockText(fault.offsetsMs[place] ?? 0)}`).join(', ')}`;
  if (fault.kind === 'membership') return `membership ${fault.action} ${name(fault.node)}${fault.via === undefined ? '' : ` via ${name(fault.via)}`}`;
  if (fault.kind === 'latency') return `latency ${fault.nodes.map(name).join(',')} ${fault.delayMs}±${fault.jitterMs} ms`;
  if (fault.kind === 'loss') return `loss ${fault.nodes.map(name).join(',')} ${fault.percent}%`;
  return `${fault.kind} ${fault.nodes.map(name).join(',')}`;
}

/** Carries out a schedule against the cluster and its links, recording every event in the history. */
export class Nemesis {
  private activeFault: Fault | undefined;
  private cancelled = false;
  private wake: (() => void) | undefined;

  constructor(
    private readonly cluster: Cluster,
    private readonly network: FaultNetwork,
    private readonly history: HistoryRecorder,
    /** Where progress lines go. */
    private readonly say: (line: string) => void,
  ) {}

  /** The fault in force now, if any. */
  get active(): Fault | undefined {
    return this.activeFault;
  }

  private get names(): string[] {
    return this.cluster.nodes.map((node) => node.name);
  }

  /** Runs the schedule's events at their times (relative to `startMs` on the history's clock) until done or cancelled. */
  async run(schedule: readonly NemesisEvent[], startMs: number): Promise<void> {
    for (const event of schedule) {
      const waitMs = startMs + event.atMs - this.history.nowMs();
      if (waitMs > 0) await this.sleep(waitMs);
      if (this.cancelled) return;
      if (event.action === 'start') await this.start(event.fault);
      else await this.stop();
    }
  }

  /** Stops the schedule; a fault in force stays until healAll. */
  cancel(): void {
    this.cancelled = true;
    this.wake?.();
  }

  private async sleep(delayMs: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delayMs);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = undefined;
  }

  private async start(fault: Fault): Promise<void> {
    const value = describeFault(fault, this.names);
    this.history.record({ type: 'invoke', process: 'nemesis', f: 'start', value });
    this.say(`nemesis: start ${faultSummary(fault, this.names)}`);
    this.activeFault = fault;
    let error: string | undefined;
    try {
      await this.inflict(fault);
    } catch (caught) {
      error = String(caught);
    }
    this.history.record({ type: 'info', process: 'nemesis', f: 'start', value, ...(error === undefined ? {} : { error }) });
  }

  private slot(index: number): ClusterNode {
    const node = this.cluster.nodes[index];
    if (node === undefined) throw new Error(`the schedule names slot ${index}, but the cluster has ${this.cluster.nodes.length}`);
    return node;
  }

  private async inflict(fault: Fault): Promise<void> {
    if (fault.kind === 'membership') {
      const node = this.slot(fault.node);
      if (fault.action === 'join') await this.cluster.join(node);
      else if (fault.action === 'leave') await this.cluster.leave(node);
      else await this.cluster.remove(node, this.slot(fault.via ?? -1));
      return;
    }
    if (fault.kind === 'clock') {
      fault.nodes.forEach((index, place) => this.cluster.setClockOffset(this.slot(index), fault.offsetsMs[place] ?? 0));
      return;
    }
    if (fault.kind === 'latency' || fault.kind === 'loss') {
      if (this.network.degrade === undefined) throw new Error(`the ${fault.kind} nemesis needs --net netns`);
      await this.network.degrade(fault);
      return;
    }
    const nodes = fault.kind === 'partition' ? [] : fault.nodes.map((index) => this.slot(index));
    if (fault.kind === 'partition') await this.network.partition(fault.blocked);
    else if (fault.kind === 'kill') await Promise.all(nodes.map((node) => this.cluster.kill(node)));
    else for (const node of nodes) this.cluster.pause(node);
  }

  private async stop(): Promise<void> {
    const fault = this.activeFault;
    if (fault === undefined) return;
    const value = describeFault(fault, this.names);
    this.history.record({ type: 'invoke', process: 'nemesis', f: 'stop', value });
    let error: string | undefined;
    try {
      // The end of a remove: the removed node's process comes back on its old disk.
      if (fault.kind === 'membership' && fault.action === 'remove') await this.cluster.bringBack(this.slot(fault.node));
      await this.repair();
    } catch (caught) {
      error = String(caught);
    }
    this.activeFault = undefined;
    this.history.record({ type: 'info', process: 'nemesis', f: 'stop', value, ...(error === undefined ? {} : { error }) });
    this.say(`nemesis: stop  ${faultSummary(fault, this.names)}${error === undefined ? '' : ` (${error})`}`);
  }

  /** Undoes every fault there could be: links healed, clocks set right, paused nodes resumed, killed members restarted (a removed node stays down until brought back). */
  private async repair(): Promise<void> {
    await this.network.healAll();
    // Every clock jumps back to true time.
    for (const node of this.cluster.nodes) this.cluster.setClockOffset(node, 0);
    for (const node of this.cluster.nodes) this.cluster.resume(node);
    await Promise.all(this.cluster.nodes.filter((node) => node.state === 'killed' && node.role === 'member').map((node) => this.cluster.restart(node)));
  }

  /** After the workload: cancels the schedule, ends the fault in force and heals everything, recorded as `heal`. */
  async healAll(): Promise<void> {
    this.cancel();
    if (this.activeFault !== undefined) await this.stop();
    this.history.record({ type: 'invoke', process: 'nemesis', f: 'heal' });
    let error: string | undefined;
    try {
      await this.repair();
    } catch (caught) {
      error = String(caught);
    }
    this.history.record({ type: 'info', process: 'nemesis', f: 'heal', ...(error === undefined ? {} : { error }) });
  }
}
