import { memberLocation, ringMembers } from '../core/ring/ring.js';
import { type ClusterView, hasDeparted } from '../core/membership/membership.js';
import type { NodeConfig } from '../config/schema.js';
import { decodeObject } from '../core/versioning/object-codec.js';
import { isDeleted } from '../core/versioning/versioned-object.js';
import { KvError } from '../util/errors.js';
import type { AntiEntropy } from './anti-entropy.js';
import type { ConsistentCoordinator } from './consistent-coordinator.js';
import type { Handoff } from './handoff.js';
import type { HintedHandoff } from './hinted-handoff.js';
import type { NodeContext } from './node-context.js';
import { PeriodicTask } from './periodic-task.js';
import type { Replica } from './replica.js';

/** What the lifecycle needs from its node: its context and the roles it starts and stops. */
export type LifecycleOptions = Pick<NodeContext, 'selfId' | 'config' | 'storage' | 'clock' | 'logger' | 'gossiper' | 'requireRing'> & {
  readonly replica: Replica;
  readonly hintedHandoff: HintedHandoff;
  readonly antiEntropy: AntiEntropy;
  readonly handoff: Handoff;
  /** Closed (drained), with the replica's coordinated writes, before this node marks itself left. */
  readonly consistentCoordinator: Pick<ConsistentCoordinator, 'close'>;
  /** Called once this node has left the cluster. */
  readonly onLeft: () => void;
  /** One shard of a sharded node: it leaves with the other members on its placement host (RingNodeOptions.leavesWithHost). */
  readonly leavesWithHost: boolean;
};

/**
 * A node's life in the cluster: start (build what requests need, then gossip, which joins
 * through the seeds, then the background roles, in that order), `ringkv leave` and
 * `ringkv remove`, becoming `left` once everything is handed off, stopping as a removed node,
 * and stop.
 */
export class Lifecycle {
  private readonly lifecycleCheck: PeriodicTask;
  /** Set once `onLeft` is due: it fires once. */
  private leftAnnounced = false;

  constructor(private readonly options: LifecycleOptions) {
    this.lifecycleCheck = new PeriodicTask(
      options.clock,
      async () => this.checkLifecycle(),
      (error) => options.logger.warn({ error: String(error) }, 'lifecycle check failed'),
      () => (this.options.gossiper.ownStatus === 'left' ? undefined : options.config.gossip.intervalMs),
    );
    options.gossiper.onRemoved(() => this.stopServingAsRemoved());
  }

  /** Loads what the roles keep (hints, Merkle trees, the bucket index) and starts gossip and the background roles, in that order. */
  async start(): Promise<void> {
    const { config, storage, replica } = this.options;
    refuseConsistencyChange(this.options.gossiper.view, config);
    await this.options.hintedHandoff.load();
    // One scan builds the Merkle trees before any request is served.
    await this.options.antiEntropy.build(this.options.gossiper.ring?.partitionCount ?? config.partitionCount);
    // A database written before the bucket index existed is indexed once, by one scan.
    const indexed = await replica.bucketIndex.buildIfMissing(storage.data, (bytes) => !isDeleted(decodeObject(bytes)));
    if (indexed > 0) this.options.logger.info({ keys: indexed }, 'built the bucket index of the stored keys');
    this.options.gossiper.start();
    // A removed node still gossips (so it hears the ring and shows its state) but moves no data.
    if (this.options.gossiper.ownStatus === 'removed') return;
    this.options.hintedHandoff.start();
    this.options.antiEntropy.start();
    this.options.handoff.start();
    this.lifecycleCheck.arm(config.gossip.intervalMs);
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

  /**
   * `ringkv leave`: this node asks to be planned out of the ring; its partitions stream to their
   * new replicas, then it hands off what remains, marks itself left, and `onLeft` fires. A shard
   * of a sharded node (`leavesWithHost`) leaves with every member on its placement host (its
   * supervisor has the others `joinHostLeave`), so a node's leave is all or nothing: this checks
   * that the host as a whole can leave, and refuses the whole request before anything is marked
   * leaving. Asked again while leaving (or after), it answers the status it has.
   */
  async leave(): Promise<{ status: string }> {
    const ring = this.options.requireRing();
    const own = this.options.gossiper.ownStatus;
    if (own === 'leaving' || own === 'left') return { status: own };
    const members = Object.values(this.options.gossiper.view.members);
    const self = this.options.gossiper.view.members[this.options.selfId];
    const host = self === undefined ? undefined : memberLocation(ring, self).host;
    // Who leaves: this node, or every member on a shard's host that has not departed (each shard of the node).
    const leavers =
      this.options.leavesWithHost && host !== undefined
        ? members.filter((member) => !hasDeparted(member.status) && memberLocation(ring, member).host === host).map((member) => member.id)
        : [this.options.selfId];
    const others = members.filter(
      (member) => !leavers.includes(member.id) && (member.status === 'up' || member.status === 'joining') && this.options.gossiper.isUp(member.id),
    );
    if (others.length === 0) {
      throw new KvError(
        'KV_CONFLICT',
        leavers.length === 1
          ? 'this is the only live member: there is nowhere to hand its data to; stop it instead'
          : `every live member of the cluster runs on host ${host} (this node's ${leavers.length} shards): there is nowhere to hand their data to, so none of them leaves; start a node on another host (or bring a down one back) first, or stop this node instead`,
      );
    }
    // A shard that owns nothing leads its host's leave all the same: the refusal is for a node that owns nothing on any shard.
    const owners = ringMembers(ring);
    if (ring.next === null && !leavers.some((id) => owners.includes(id))) {
      throw new KvError(
        'KV_CONFLICT',
        leavers.length === 1 ? 'this node owns no partitions; it can simply be stopped' : `no shard of this node owns a partition; it can simply be stopped`,
      );
    }
    try {
      await this.options.gossiper.setOwnStatus('leaving');
    } catch (error) {
      throw new KvError(
        'KV_STORAGE',
        `could not record the leave in this node's data directory (${error instanceof Error ? error.message : String(error)}); nothing was announced: fix the storage and run \`ringkv leave\` again`,
        { cause: error },
      );
    }
    return { status: 'leaving' };
  }

  /**
   * Another shard of this node's host was asked to leave (`leave`, which checked that the whole
   * host can) and the supervisor passes it on: this shard leaves too, without refusing, since
   * refusing would leave half the node in the ring. One that owns and holds nothing becomes
   * `left` at the next lifecycle check; one already gone from the cluster (left, or removed
   * while it was down) has nothing to hand off, so `onLeft` fires at once and it exits.
   */
  async joinHostLeave(): Promise<void> {
    const own = this.options.gossiper.ownStatus;
    if (own === 'leaving') return;
    if (hasDeparted(own)) {
      if (!this.leftAnnounced) this.announceLeft(0);
      return;
    }
    await this.options.gossiper.setOwnStatus('leaving');
  }

  /** `ringkv remove NODE_ID`: plans a node that is gone for good out of the ring; its partitions are rebuilt from the other replicas. */
  removeMember(nodeId: string): { status: string } {
    if (nodeId === this.options.selfId)
      throw new KvError('KV_CONFLICT', 'a node cannot remove itself: use `ringkv leave` on it, or `ringkv remove` on another node');
    const member = this.options.gossiper.view.members[nodeId];
    if (member === undefined) throw new KvError('KV_UNKNOWN_NODE', `no member ${nodeId}; see \`ringkv status\` for the ids`);
    if (this.options.gossiper.isUp(nodeId))
      throw new KvError('KV_CONFLICT', `node ${nodeId} is up: use \`ringkv leave --node ${member.address}\` to decommission a live node`);
    this.options.gossiper.markRemoved(nodeId);
    return { status: 'removed' };
  }

  /**
   * A leaving node becomes `left` once the ring no longer has it and it holds no data. First it
   * stops taking consistent operations and coordinated writes and waits for those under way
   * (bounded by their deadlines): a version is in the watch log of the node that decided or
   * coordinated it alone, and watches read a departed node's log to its end once, so every
   * version this node made must be in its log before any other node can see it left
   * (docs/CONSENSUS.md, "Watches").
   */
  private async checkLifecycle(): Promise<void> {
    if (!this.handedOff()) return;
    await this.drain();
    // Checked again: the drain took time, and what it waited on may have changed the answer (the next check tries again).
    if (!this.handedOff()) return;
    // Persisted before anyone hears of it: a shard that left must not start again under its id.
    await this.options.gossiper.setOwnStatus('left');
    this.options.logger.info({}, 'this node has handed off all its data and left the cluster');
    // A few gossip rounds let the others hear that it left before it goes.
    this.announceLeft(3 * this.options.config.gossip.intervalMs);
  }

  /** `onLeft` fires once, after `delayMs`. */
  private announceLeft(delayMs: number): void {
    this.leftAnnounced = true;
    this.options.clock.setTimer(delayMs, () => this.options.onLeft());
  }

  /**
   * Stops the two kinds of operations whose outcome only this node's watch log reports, and waits
   * for those under way: consistent operations (their decisions) and the client writes its
   * replica coordinates (their dots).
   */
  private async drain(): Promise<void> {
    await Promise.all([this.options.consistentCoordinator.close(), this.options.replica.stopCoordinating()]);
  }

  /** Whether this node is leaving and has handed everything off: the ring no longer has it, and it holds no partition and no hint. */
  private handedOff(): boolean {
    const ring = this.options.gossiper.ring;
    if (this.options.gossiper.ownStatus !== 'leaving' || ring === null || ring.next !== null || ring.owners.includes(this.options.selfId)) return false;
    return this.options.antiEntropy.heldPartitions().length === 0 && this.options.hintedHandoff.store.pending === 0;
  }

  /** Stops background work (the caller closes the HTTP server and the storage). */
  async stop(): Promise<void> {
    this.options.gossiper.stop();
    this.options.hintedHandoff.stop();
    this.lifecycleCheck.stop();
    this.options.handoff.stop();
    // It waits for the writes under way, then saves the Merkle trees for the next start.
    await this.options.antiEntropy.close();
    // Last: no write issues a dot after this, so the actor lease can be saved as stopped cleanly.
    await this.options.replica.close();
  }
}

/**
 * A bucket's `consistent` is fixed once the cluster has it (README, "Consistent buckets"): its
 * keys live in Paxos state, its plain data in replicas, and neither path reads the other's. So a
 * node whose config says otherwise than the cluster view it persisted does not start, rather than
 * run with a setting it would silently not honour.
 */
function refuseConsistencyChange(view: ClusterView, config: NodeConfig): void {
  if (view.bucketPropertiesVersion === 0) return;
  const shared = view.bucketProperties;
  const configured: [string, boolean | undefined][] = [
    ['', config.bucketDefaults.consistent],
    ...Object.entries(config.buckets).map(([bucket, properties]): [string, boolean | undefined] => [bucket, properties.consistent]),
  ];
  for (const [bucket, wanted] of configured) {
    if (wanted === undefined) continue;
    const held = shared[bucket]?.consistent ?? (bucket === '' ? false : (shared['']?.consistent ?? false));
    if (held === wanted) continue;
    const name = bucket === '' ? 'bucketDefaults' : `buckets.${bucket}`;
    throw new KvError(
      'KV_CONSISTENT_BUCKET',
      `the config sets ${name}.consistent to ${wanted}, but the cluster has it ${held}, and a bucket's consistent cannot change once the cluster is founded; set it back to ${held} (or create a new bucket with the other setting)`,
    );
  }
}
