/**
 * A whole ringkv cluster in one process: real RingNode engines on memory storage, a simulated
 * network and one seeded scheduler of timers and message deliveries (the VirtualClock), all
 * driven by one seeded PRNG, so a failing run replays from its seed. Each node reads its own
 * clock, off by an offset and a drift drawn from the seed. A crash is unclean: the node's work
 * under way never completes, and a power loss also loses every write it had not synced. Nothing here sleeps: time moves only when the test advances the virtual clock.
 */
import { MemoryStorage } from './memory-storage.js';
import type { BrokenClaimant } from '../engine/broken-claimant.js';
import type { BrokenVariant } from '../core/consensus/broken-variants.js';
import { type ClockError, NodeClock } from './node-clock.js';
import { SeededRandom } from './seeded-random.js';
import { SimulatedNetwork, type SimulatedTransport } from './simulated-transport.js';
import { VirtualClock } from './virtual-clock.js';
import { type NodeConfig } from '../config/schema.js';
import { mergeConfig, validateConfig } from '../config/validate.js';
import { RingNode } from '../engine/ring-node.js';
import { type FaultPoints, noFaultPoints } from '../ports/fault-points.js';
import { silentLogger } from '../ports/logger.js';
import { type FaultSettings, SeededFaultPoints } from './seeded-fault-points.js';
import type { Storage } from '../ports/storage.js';
import defaults from '../../config/default.json' with { type: 'json' };

/** One simulated node: its engine, its storage (what its disk holds, replaced by what survives a crash), its clock and its address. */
export interface SimMember {
  /** Settings of this member that differ from the cluster's (a misconfigured node, say). */
  readonly configOverride?: Partial<NodeConfig>;
  /** One shard of a sharded node: it leaves with the other members on its placement host (RingNodeOptions.leavesWithHost). */
  readonly leavesWithHost?: boolean;
  readonly address: string;
  readonly nodeId: string;
  /** The disk: after a crash, the storage that survived it, which `restart` boots on. */
  storage: SimStorage;
  node: RingNode;
  generation: number;
  running: boolean;
  /** How this machine's clock is off (drawn from the seed when the member is added). */
  readonly clockError: ClockError;
  /** The clock of the node's current run; a crash stops it. */
  clock: NodeClock;
  /** The transport of the node's current run; a crash kills it. */
  transport: SimulatedTransport;
}

/**
 * A member's disk: memory storage, or a test's wrapper of it. `crash` (memory storage has it)
 * answers what survives a crash; a wrapper without it survives every crash whole.
 */
export type SimStorage = Storage & { crash?(kind: CrashKind): Promise<SimStorage> };

/** Simulation settings beyond the node config. */
export interface SimOptions {
  /** Makes each member's storage (memory storage when absent), so a test can wrap it and watch what is synced. */
  readonly storage?: (nodeId: string) => SimStorage;
  /** Each node's clock reads off by up to this much either way (default 2,000 ms; 0 gives every node the scheduler's time). */
  readonly clockSkewMs?: number;
  /** Each node's clock runs fast or slow by up to this rate (default 1e-4). */
  readonly clockDrift?: number;
  /** The seeded fault points this run turns on (src/sim/seeded-fault-points.ts); none when absent. */
  readonly faults?: FaultSettings;
  /**
   * Whom a node names as seeds: the founder only (the default), or every member the launch starts
   * and any added since, itself included, as operators who hand every node one seed list do (and
   * as jepsen-lite does).
   */
  readonly seeds?: 'founder' | 'every-member';
  /** A deliberately broken claimant on every node (src/engine/broken-claimant.ts), to show a test catches it. */
  readonly brokenClaimant?: BrokenClaimant;
  /** A deliberately broken proposer on every node (src/core/consensus/broken-variants.ts), to show a test catches it. */
  readonly brokenProposer?: BrokenVariant;
}

/** What a crash loses: a power loss loses the writes not yet synced; a process crash (kill -9) loses none. */
export type CrashKind = 'power-loss' | 'process';

/** A simulated cluster. */
export class SimCluster {
  /** The scheduler: virtual time, and the one queue of timers and message deliveries. */
  readonly clock: VirtualClock;
  readonly random: SeededRandom;
  readonly network: SimulatedNetwork;
  readonly members: SimMember[] = [];
  readonly config: NodeConfig;
  /** The fault points every node of the run passes (a SeededFaultPoints when `faults` turned some on). */
  readonly faultPoints: FaultPoints;
  private readonly clockSkewMs: number;
  private readonly clockDrift: number;

  private constructor(
    readonly seed: number,
    configOverride: unknown,
    private readonly options: SimOptions,
  ) {
    this.random = new SeededRandom(seed);
    this.clock = new VirtualClock(1_700_000_000_000, { random: this.random.fork() });
    this.network = new SimulatedNetwork(this.clock, this.random.fork());
    // A stream of their own, forked only when faults are on, so a run without them draws as it always did.
    this.faultPoints =
      options.faults === undefined ? noFaultPoints : new SeededFaultPoints(options.faults, this.random.fork(), (line) => this.clock.note(line));
    this.clockSkewMs = options.clockSkewMs ?? 2000;
    this.clockDrift = options.clockDrift ?? 1e-4;
    this.config = validateConfig(
      mergeConfig(
        mergeConfig(defaults, {
          partitionCount: 32,
          gossip: { intervalMs: 200, fanout: 2 },
          hintedHandoff: { intervalMs: 200, batchSize: 100 },
          limits: { requestTimeoutMs: 2000, peerTimeoutMs: 500 },
          clusterSecret: 'simulation-secret-0123456789',
        }),
        configOverride,
      ),
    );
  }

  /** Starts `count` nodes: the first bootstraps the ring, the others seed from it; waits until the ring holds them all. */
  static async start(seed: number, count: number, configOverride: unknown = {}, options: SimOptions = {}): Promise<SimCluster> {
    const cluster = await SimCluster.launch(seed, count, configOverride, options);
    await cluster.runUntil(() => cluster.ringSettled(), 60_000, 'ring settles');
    return cluster;
  }

  /** Starts `count` nodes at the same virtual moment (the first founds the ring, the others seed from it), without waiting for anything. */
  static async launch(seed: number, count: number, configOverride: unknown = {}, options: SimOptions = {}): Promise<SimCluster> {
    const cluster = new SimCluster(seed, configOverride, options);
    cluster.launchCount = count;
    for (let index = 0; index < count; index++) await cluster.addMember();
    return cluster;
  }

  private nodeConfig(member: SimMember, seeds: string[]): NodeConfig {
    const [host, port] = member.address.split(':');
    return { ...this.config, ...member.configOverride, host: host as string, port: Number(port), seeds };
  }

  /** Adds and starts a new member, optionally with some settings of its own, and as one shard of a sharded node (`leavesWithHost`). */
  async addMember(configOverride?: Partial<NodeConfig>, shape: { readonly leavesWithHost?: boolean } = {}): Promise<SimMember> {
    const index = this.members.length + 1;
    const address = SimCluster.addressOf(index);
    const storage: SimStorage = this.options.storage?.(`node${index}`) ?? new MemoryStorage();
    await storage.open();
    // A machine's clock error is its own, drawn once: a restart keeps it.
    const clockError: ClockError = {
      offsetMs: this.clockSkewMs === 0 ? 0 : Math.round((this.random.next() * 2 - 1) * this.clockSkewMs),
      drift: this.clockDrift === 0 ? 0 : (this.random.next() * 2 - 1) * this.clockDrift,
    };
    const clock = new NodeClock(this.clock, clockError);
    const member: SimMember = {
      address,
      nodeId: `node${index}`,
      storage,
      node: undefined as unknown as RingNode,
      generation: 1,
      running: false,
      clockError,
      clock,
      transport: this.network.transportFor(address, clock),
      ...(configOverride === undefined ? {} : { configOverride }),
      ...(shape.leavesWithHost === true ? { leavesWithHost: true } : {}),
    };
    this.members.push(member);
    this.machineStartMs.set(member, this.clock.nowMs());
    await this.boot(member);
    return member;
  }

  /** How many members the launch starts (seeds name them all before they exist). */
  private launchCount = 0;

  /** The address of the `index`th member (from 1). */
  private static addressOf(index: number): string {
    return `10.0.0.${index}:7000`;
  }

  /** The scheduler time at which each machine's clock error was drawn. */
  private readonly machineStartMs = new Map<SimMember, number>();

  private async boot(member: SimMember): Promise<void> {
    const everyMember = Array.from({ length: Math.max(this.launchCount, this.members.length) }, (_, index) => SimCluster.addressOf(index + 1));
    const seeds = member === this.members[0] ? [] : this.options.seeds === 'every-member' ? everyMember : [this.members[0]!.address];
    // A fresh run of the node: its own clock (the machine's, read on) and transport, which its next crash stops.
    if (member.clock.isStopped) {
      member.clock = new NodeClock(this.clock, member.clockError, this.machineStartMs.get(member));
      member.transport = this.network.transportFor(member.address, member.clock);
    }
    const node = await this.onVirtualClock(
      RingNode.open({
        identity: { nodeId: member.nodeId, generation: member.generation, clusterSecret: 'simulation-secret-0123456789', address: member.address },
        config: this.nodeConfig(member, seeds),
        storage: member.storage,
        transport: member.transport,
        clock: member.clock,
        random: this.random.fork(),
        logger: silentLogger,
        faultPoints: this.faultPoints,
        ...(member.leavesWithHost === true ? { leavesWithHost: true } : {}),
        ...(this.options.brokenClaimant === undefined ? {} : { brokenClaimant: this.options.brokenClaimant }),
        ...(this.options.brokenProposer === undefined ? {} : { brokenProposer: this.options.brokenProposer }),
      }),
      `${member.nodeId} opens`,
    );
    member.node = node;
    this.network.register(member.address, (request) => node.handlePeer(request));
    await this.onVirtualClock(node.start(), `${member.nodeId} starts`);
    member.running = true;
  }

  /**
   * Runs a node's open, start or stop on the virtual clock: the work under way runs first, at
   * this virtual instant, until the operation settles (what it left running in the background
   * goes on later, as it would after a real start), and while it still waits on something later (a storage write the
   * `storage-write` fault point slowed, say) virtual time advances until it settles. Awaited
   * outside the scheduler, such a wait would never end.
   */
  private async onVirtualClock<T>(operation: Promise<T>, what: string): Promise<T> {
    let settled = false;
    const tracked = operation.finally(() => {
      settled = true;
    });
    tracked.catch(() => undefined);
    await this.clock.settle(() => settled);
    if (!settled) await this.runUntil(() => settled, 60_000, what, 10);
    return tracked;
  }

  /**
   * Crashes a member, uncleanly: it stops answering at once, its timers never fire, nothing it
   * sent is answered, and its storage handle refuses every call, so no handler under way
   * completes later. Its disk keeps what the crash leaves: after a 'process' crash (kill -9, the
   * default) every write, as LevelDB's log sits in the page cache; after a 'power-loss' only
   * what was synced, so writes acknowledged without `dw` may be gone.
   */
  async crash(member: SimMember, kind: CrashKind = 'process'): Promise<void> {
    this.halt(member);
    if (member.storage.crash !== undefined) member.storage = await member.storage.crash(kind);
  }

  /** Stops a member's run at once: no more deliveries to it, no timers, no replies to what it sent. */
  private halt(member: SimMember): void {
    this.network.unregister(member.address);
    member.transport.kill();
    member.clock.stop();
    member.running = false;
  }

  /**
   * Stops a member cleanly, as SIGTERM does: it stops answering peers, then its node stops (and
   * saves what a clean stop saves, such as its Merkle trees). `restart` brings it back.
   */
  async stopCleanly(member: SimMember): Promise<void> {
    this.network.unregister(member.address);
    // Its clock runs until the node has stopped: a clean stop still writes (the Merkle trees, the actor lease).
    await this.onVirtualClock(member.node.stop(), `${member.nodeId} stops`);
    this.halt(member);
  }

  /** Restarts a crashed member with a higher generation on what its disk kept. */
  async restart(member: SimMember): Promise<void> {
    member.generation += 1;
    await this.boot(member);
  }

  /** True when every running member's ring lists every member and holds every running one alive (no suspicion left to time out). */
  ringSettled(): boolean {
    const running = this.members.filter((member) => member.running);
    return running.every((member) => {
      const ring = member.node.gossiper.ring;
      if (ring === null || ring.next !== null) return false;
      const owners = new Set(ring.owners);
      return this.members.every((other) => owners.has(other.nodeId)) && running.every((other) => member.node.gossiper.isAlive(other.nodeId));
    });
  }

  /** Advances virtual time until `predicate` holds, or fails with the seed after `deadlineMs` of virtual time. */
  async runUntil(predicate: () => boolean | Promise<boolean>, deadlineMs: number, what: string, stepMs = 50): Promise<void> {
    const deadline = this.clock.nowMs() + deadlineMs;
    while (!(await predicate())) {
      if (this.clock.nowMs() >= deadline) throw new Error(`simulation seed ${this.seed}: '${what}' not reached within ${deadlineMs} ms of virtual time`);
      await this.clock.advance(stepMs);
    }
  }

  /**
   * Runs an async operation while advancing virtual time until it settles; fails with the seed
   * when it has not settled after `limitMs` of virtual time (an operation on a node that
   * crashed under it never settles, as a client of a dead server hears nothing).
   */
  async drive<T>(operation: Promise<T>, limitMs = 60_000): Promise<T> {
    let settled = false;
    const tracked = operation.finally(() => {
      settled = true;
    });
    tracked.catch(() => undefined);
    const deadline = this.clock.nowMs() + limitMs;
    while (!settled && this.clock.nowMs() < deadline) await this.clock.advance(10);
    if (!settled) throw new Error(`simulation seed ${this.seed}: an operation did not settle within ${limitMs} ms of virtual time`);
    return tracked;
  }

  /** Starts the scheduler's trace (every message delivery, reply, drop and crash with its virtual time); see VirtualClock.startTrace. */
  startTrace(): readonly string[] {
    return this.clock.startTrace();
  }

  /** Stops every running member (their storage is left as it is). */
  async stop(): Promise<void> {
    for (const member of this.members) {
      if (member.running) await this.stopCleanly(member);
    }
  }
}
