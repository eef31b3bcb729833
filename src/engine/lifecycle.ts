import { type Ring, ringMembers } from '../core/ring/ring.js';
import { decodeObject } from '../core/versioning/object-codec.js';
import { isDeleted } from '../core/versioning/versioned-object.js';
import { KvError } from '../util/errors.js';
import type { Clock } from '../ports/clock.js';
import type { FaultPoints } from '../ports/fault-points.js';
import type { Logger } from '../ports/logger.js';
import type { Random } from '../ports/random.js';
import type { Storage } from '../ports/storage.js';
import type { Transport } from '../ports/transport.js';
import type { AntiEntropy } from './anti-entropy.js';
import { Claimant } from './claimant.js';
import type { NodeConfig } from '../config/schema.js';
import { Gossiper, type GossiperSelf } from './gossiper.js';
import type { Handoff } from './handoff.js';
import type { HintedHandoff } from './hinted-handoff.js';
import { PeriodicTask } from './periodic-task.js';
import type { Replica } from './replica.js';

/** Who this node is; persisted in its data directory by main.ts. */
export interface NodeIdentity {
  readonly nodeId: string;
  readonly generation: number;
  readonly clusterSecret: string;
  readonly address: string;
}

/** The ports and settings a node runs on (RingNode takes these; the lifecycle works with them). */
export interface NodePorts {
  readonly identity: NodeIdentity;
  readonly config: NodeConfig;
  readonly storage: Storage;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  /** Where a simulation makes things go wrong (src/ports/fault-points.ts); production's never fire. */
  readonly faultPoints: FaultPoints;
}

/** What the lifecycle needs from its node: its ports and the roles it starts and stops. */
export interface LifecycleOptions extends NodePorts {
  readonly replica: Replica;
  readonly hintedHandoff: HintedHandoff;
  readonly antiEntropy: AntiEntropy;
  readonly handoff: Handoff;
  /** Every bucket n_val, ascending (the claimant compares replica sets of each size). */
  readonly nVals: () => readonly number[];
  /** Called once this node has left the cluster. */
  readonly onLeft: () => void;
}

const viewMetaKey = Buffer.from('cluster-view');

/**
 * A node's life in the cluster: start (load the persisted view, join through the seeds, build
 * what requests need, then start the background roles, in that order), `ringkv leave` and
 * `ringkv remove`, becoming `left` once everything is handed off, stopping as a removed node,
 * and stop.
 */
export class Lifecycle {
  private gossiperState: Gossiper | undefined;
  private readonly lifecycleCheck: PeriodicTask;

  constructor(private readonly options: LifecycleOptions) {
    this.lifecycleCheck = new PeriodicTask(
      options.clock,
      async () => this.checkLifecycle(),
      (error) => options.logger.warn({ error: String(error) }, 'lifecycle check failed'),
      () => (this.gossiper.ownStatus === 'left' ? undefined : options.config.gossip.intervalMs),
    );
  }

  /** The membership view and failure detector (created by start). */
  get gossiper(): Gossiper {
    return this.gossiperState as Gossiper;
  }

  /** The gossiper, or undefined before start. */
  get startedGossiper(): Gossiper | undefined {
    return this.gossiperState;
  }

  /** Loads persisted state and starts gossip and hint delivery. */
  async start(): Promise<void> {
    const { config, identity, storage } = this.options;
    const stored = await storage.meta.get(viewMetaKey);
    const initialView = stored === undefined ? undefined : this.parseStoredView(stored);
    // Where the node runs travels in its member record; the claimant puts it in the ring when the node joins.
    const { host, zone } = config.placement;
    const location = host === '' && zone === '' ? undefined : { host: host === '' ? identity.nodeId : host, ...(zone === '' ? {} : { zone }) };
    const self: GossiperSelf = { id: identity.nodeId, address: identity.address, generation: identity.generation, ...(location === undefined ? {} : { location }) };
    this.gossiperState = new Gossiper({
      self,
      seeds: config.seeds.filter((seed) => seed !== identity.address),
      partitionCount: config.partitionCount,
      bucketProperties: { ...config.buckets, '': config.bucketDefaults },
      intervalMs: config.gossip.intervalMs,
      fanout: config.gossip.fanout,
      peerTimeoutMs: config.limits.peerTimeoutMs,
      claimant: new Claimant({ selfId: identity.nodeId, nVals: this.options.nVals, logger: this.options.logger }),
      initialView,
      transport: this.options.transport,
      clock: this.options.clock,
      random: this.options.random,
      logger: this.options.logger,
      persist: (view) => storage.meta.put(viewMetaKey, Buffer.from(JSON.stringify(view), 'utf8'), { sync: true }),
      onRingChange: () => this.options.handoff.runSoon(),
      onRemoved: () => this.stopServingAsRemoved(),
    });
    await this.options.hintedHandoff.load();
    // One scan builds the Merkle trees before any request is served.
    await this.options.antiEntropy.build(this.gossiper.ring?.partitionCount ?? config.partitionCount);
    // A database written before the bucket index existed is indexed once, by one scan.
    const indexed = await this.options.replica.bucketIndex.buildIfMissing(storage.data, (bytes) => !isDeleted(decodeObject(bytes)));
    if (indexed > 0) this.options.logger.info({ keys: indexed }, 'built the bucket index of the stored keys');
    this.gossiper.start();
    // A removed node still gossips (so it hears the ring and shows its state) but moves no data.
    if (this.gossiper.ownStatus === 'removed') return;
    this.options.hintedHandoff.start();
    this.options.antiEntropy.start();
    this.options.handoff.start();
    this.lifecycleCheck.arm(config.gossip.intervalMs);
  }

  /** The persisted view as JSON, or undefined when it is not readable (the gossiper checks its schema). */
  private parseStoredView(stored: Uint8Array): unknown {
    try {
      return JSON.parse(Buffer.from(stored).toString('utf8')) as unknown;
    } catch (error) {
      this.options.logger.error({ error: String(error) }, 'the persisted cluster view is not JSON; starting without it and learning the cluster from the seeds');
      return undefined;
    }
  }

  /**
   * A removed node stops moving data: its handoff would push what it still holds (a delete's
   * reaped key, say) back to the replicas, and its anti-entropy and hints would do the same.
   */
  private stopServingAsRemoved(): void {
    this.options.hintedHandoff.stop();
    this.options.antiEntropy.stop();
    this.options.handoff.stop();
    this.lifecycleCheck.stop();
  }

  /** The refusal a removed node answers every data request with. */
  removedError(): KvError {
    return new KvError('KV_NOT_READY', `node ${this.options.identity.nodeId} was removed from the cluster and serves no data; use another node. To bring this machine back, wipe its data directory and start it again: it joins with a new id`);
  }

  /** Why this node serves no data now (it was removed), or undefined while it serves. */
  refusal(): KvError | undefined {
    return this.gossiperState?.ownStatus === 'removed' ? this.removedError() : undefined;
  }

  /**
   * `ringkv leave`: this node asks to be planned out of the ring; its partitions stream to their
   * new replicas, then it hands off what remains, marks itself left, and `onLeft` fires.
   */
  leave(): { status: string } {
    const ring = this.requireRing();
    const selfId = this.options.identity.nodeId;
    const others = Object.values(this.gossiper.view.members).filter(
      (member) => member.id !== selfId && (member.status === 'up' || member.status === 'joining') && this.gossiper.isUp(member.id),
    );
    if (others.length === 0) throw new KvError('KV_CONFLICT', 'this is the only live member: there is nowhere to hand its data to; stop it instead');
    if (!ringMembers(ring).includes(selfId) && ring.next === null) throw new KvError('KV_CONFLICT', 'this node owns no partitions; it can simply be stopped');
    this.gossiper.setOwnStatus('leaving');
    return { status: 'leaving' };
  }

  /** `ringkv remove NODE_ID`: plans a node that is gone for good out of the ring; its partitions are rebuilt from the other replicas. */
  removeMember(nodeId: string): { status: string } {
    if (nodeId === this.options.identity.nodeId) throw new KvError('KV_CONFLICT', 'a node cannot remove itself: use `ringkv leave` on it, or `ringkv remove` on another node');
    const member = this.gossiper.view.members[nodeId];
    if (member === undefined) throw new KvError('KV_UNKNOWN_NODE', `no member ${nodeId}; see \`ringkv status\` for the ids`);
    if (this.gossiper.isUp(nodeId)) throw new KvError('KV_CONFLICT', `node ${nodeId} is up: use \`ringkv leave --node ${member.address}\` to decommission a live node`);
    this.gossiper.markRemoved(nodeId);
    return { status: 'removed' };
  }

  /** A leaving node becomes `left` once the ring no longer has it and it holds no data. */
  private checkLifecycle(): void {
    const ring = this.gossiper.ring;
    if (this.gossiper.ownStatus !== 'leaving' || ring === null || ring.next !== null || ring.owners.includes(this.options.identity.nodeId)) return;
    if (this.options.antiEntropy.heldPartitions().length > 0 || this.options.hintedHandoff.store.pending > 0) return;
    this.gossiper.setOwnStatus('left');
    this.options.logger.info({}, 'this node has handed off all its data and left the cluster');
    // A few gossip rounds let the others hear that it left before it goes.
    this.options.clock.setTimer(3 * this.options.config.gossip.intervalMs, () => this.options.onLeft());
  }

  /** Stops background work (the caller closes the HTTP server and the storage). */
  async stop(): Promise<void> {
    this.gossiperState?.stop();
    this.options.hintedHandoff.stop();
    this.lifecycleCheck.stop();
    this.options.handoff.stop();
    // It waits for the writes under way, then saves the Merkle trees for the next start.
    await this.options.antiEntropy.close();
    // Last: no write issues a dot after this, so the actor lease can be saved as stopped cleanly.
    await this.options.replica.close();
  }

  /** The ring, or the refusal of a node that has none yet (or was removed). */
  requireRing(): Ring {
    if (this.gossiper.ownStatus === 'removed') throw this.removedError();
    const ring = this.gossiper.ring;
    if (ring === null) {
      throw new KvError('KV_NOT_READY', 'this node has not joined a ring yet; check that --seeds points at a running node of the cluster', { retryAfterSeconds: 1 });
    }
    return ring;
  }
}
