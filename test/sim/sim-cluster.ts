/**
 * A whole ringkv cluster in one process: real RingNode engines on memory storage, a simulated
 * network and a virtual clock, all driven by one seeded PRNG, so a failing run replays from its
 * seed. Nothing here sleeps: time moves only when the test advances the virtual clock.
 */
import { MemoryStorage } from '../../src/adapters/memory-storage.js';
import { SeededRandom } from '../../src/adapters/seeded-random.js';
import { SimulatedNetwork } from '../../src/adapters/simulated-transport.js';
import { VirtualClock } from '../../src/adapters/virtual-clock.js';
import { type NodeConfig, mergeConfig, validateConfig } from '../../src/engine/config.js';
import { RingNode } from '../../src/engine/ring-node.js';
import { silentLogger } from '../../src/ports/logger.js';
import type { Storage } from '../../src/ports/storage.js';
import defaults from '../../config/default.json' with { type: 'json' };

/** One simulated node: its engine, its storage (kept across crashes) and its address. */
export interface SimMember {
  /** Settings of this member that differ from the cluster's (a misconfigured node, say). */
  readonly configOverride?: Partial<NodeConfig>;
  readonly address: string;
  readonly nodeId: string;
  /** Memory storage, or a test's wrapper of it (see SimClusterOptions.storage). */
  readonly storage: Storage;
  node: RingNode;
  generation: number;
  running: boolean;
}

/** Test hooks of a simulated cluster. */
export interface SimClusterOptions {
  /** Makes each member's storage (memory storage when absent), so a test can wrap it and watch what is synced. */
  readonly storage?: (nodeId: string) => Storage;
}

/** A simulated cluster. */
export class SimCluster {
  readonly clock: VirtualClock;
  readonly random: SeededRandom;
  readonly network: SimulatedNetwork;
  readonly members: SimMember[] = [];
  readonly config: NodeConfig;

  private constructor(
    readonly seed: number,
    configOverride: unknown,
    private readonly options: SimClusterOptions,
  ) {
    this.clock = new VirtualClock(1_700_000_000_000);
    this.random = new SeededRandom(seed);
    this.network = new SimulatedNetwork(this.clock, this.random.fork());
    this.config = validateConfig(
      mergeConfig(
        mergeConfig(defaults, {
          partitionCount: 32,
          gossip: { intervalMs: 200, fanout: 2, phiThreshold: 8 },
          hintedHandoff: { intervalMs: 200, batchSize: 100 },
          limits: { requestTimeoutMs: 2000, peerTimeoutMs: 500 },
          clusterSecret: 'simulation-secret-0123456789',
        }),
        configOverride,
      ),
    );
  }

  /** Starts `count` nodes: the first bootstraps the ring, the others seed from it; waits until the ring holds them all. */
  static async start(seed: number, count: number, configOverride: unknown = {}, options: SimClusterOptions = {}): Promise<SimCluster> {
    const cluster = await SimCluster.launch(seed, count, configOverride, options);
    await cluster.runUntil(() => cluster.ringSettled(), 60_000, 'ring settles');
    return cluster;
  }

  /** Starts `count` nodes at the same virtual moment (the first founds the ring, the others seed from it), without waiting for anything. */
  static async launch(seed: number, count: number, configOverride: unknown = {}, options: SimClusterOptions = {}): Promise<SimCluster> {
    const cluster = new SimCluster(seed, configOverride, options);
    for (let index = 0; index < count; index++) await cluster.addMember();
    return cluster;
  }

  private nodeConfig(member: SimMember, seeds: string[]): NodeConfig {
    const [host, port] = member.address.split(':');
    return { ...this.config, ...member.configOverride, host: host as string, port: Number(port), seeds };
  }

  /** Adds and starts a new member, optionally with some settings of its own. */
  async addMember(configOverride?: Partial<NodeConfig>): Promise<SimMember> {
    const index = this.members.length + 1;
    const address = `10.0.0.${index}:7000`;
    const storage = this.options.storage?.(`node${index}`) ?? new MemoryStorage();
    await storage.open();
    const member: SimMember = {
      address,
      nodeId: `node${index}`,
      storage,
      node: undefined as unknown as RingNode,
      generation: 1,
      running: false,
      ...(configOverride === undefined ? {} : { configOverride }),
    };
    this.members.push(member);
    await this.boot(member);
    return member;
  }

  private async boot(member: SimMember): Promise<void> {
    const seeds = member === this.members[0] ? [] : [this.members[0]!.address];
    const node = new RingNode({
      identity: { nodeId: member.nodeId, generation: member.generation, clusterSecret: 'simulation-secret-0123456789', address: member.address },
      config: this.nodeConfig(member, seeds),
      storage: member.storage,
      transport: this.network.transportFor(member.address),
      clock: this.clock,
      random: this.random.fork(),
      logger: silentLogger,
    });
    member.node = node;
    this.network.register(member.address, (request) => node.handlePeer(request));
    await node.start();
    member.running = true;
  }

  /** Crashes a member: it stops answering at once; its storage survives (it is a disk). */
  async crash(member: SimMember): Promise<void> {
    this.network.unregister(member.address);
    await member.node.stop();
    member.running = false;
  }

  /** Restarts a crashed member with a higher generation on the same storage. */
  async restart(member: SimMember): Promise<void> {
    member.generation += 1;
    await this.boot(member);
  }

  /** True when every running member's ring lists every member and sees them all up. */
  ringSettled(): boolean {
    const running = this.members.filter((member) => member.running);
    return running.every((member) => {
      const ring = member.node.membership.ring;
      if (ring === null || ring.next !== null) return false;
      const owners = new Set(ring.owners);
      return this.members.every((other) => owners.has(other.nodeId)) && running.every((other) => member.node.membership.isUp(other.nodeId));
    });
  }

  /**
   * Advances virtual time, `stepMs` at a time, until `predicate` holds, or fails with the seed after
   * `deadlineMs` of virtual time. A small step catches a state that lasts only a few messages.
   */
  async runUntil(predicate: () => boolean | Promise<boolean>, deadlineMs: number, what: string, stepMs = 50): Promise<void> {
    const deadline = this.clock.nowMs() + deadlineMs;
    while (!(await predicate())) {
      if (this.clock.nowMs() >= deadline) throw new Error(`simulation seed ${this.seed}: '${what}' not reached within ${deadlineMs} ms of virtual time`);
      await this.clock.advance(stepMs);
    }
  }

  /** Runs an async operation while advancing virtual time until it settles. */
  async drive<T>(operation: Promise<T>, limitMs = 60_000): Promise<T> {
    let settled = false;
    const tracked = operation.finally(() => {
      settled = true;
    });
    tracked.catch(() => undefined);
    const deadline = this.clock.nowMs() + limitMs;
    while (!settled && this.clock.nowMs() < deadline) await this.clock.advance(10);
    return tracked;
  }

  /** Stops every running member. */
  async stop(): Promise<void> {
    for (const member of this.members) if (member.running) await this.crash(member);
  }
}
