import { encodeDataKey, partitionOfPosition } from '../core/keys.js';
import { type MemberLifecycle, hasDeparted } from '../core/membership/membership.js';
import { pendingReplicas, preferenceList } from '../core/ring/ring.js';
import type { PeerReply, ReplicaPutRequest } from '../core/wire/messages.js';
import { KvError } from '../util/errors.js';
import type { KeySpace } from '../ports/storage.js';
import type { NodeConfig } from '../config/schema.js';
import { type Hint, HintStore } from './hint-store.js';
import { PeriodicTask } from './periodic-task.js';
import { Replica } from './replica.js';
import type { NodeContext } from './node-context.js';

/** What hinted handoff needs from its node. */
export type HintedHandoffOptions = Pick<NodeContext, 'selfId' | 'clock' | 'logger' | 'isUp' | 'send' | 'ring' | 'bucketProperties'> & {
  /** The hints sublevel of this node's storage. */
  readonly space: KeySpace;
  readonly settings: NodeConfig['hintedHandoff'];
  /** A member's lifecycle in the gossiped view (undefined when unknown). */
  readonly memberStatus: (nodeId: string) => MemberLifecycle | undefined;
  /** This node's replica: a hint redirected to the key's replicas merges here when this node is one. */
  readonly replica: Replica;
};

/** The hint figures of GET /status. */
export interface HintStatus {
  readonly pending: number;
  readonly delivered: number;
  readonly expired: number;
  readonly dropped: number;
  readonly byTarget: Readonly<Record<string, number>>;
}

/**
 * Dynamo's hinted handoff: a fallback node keeps a write meant for a primary that is down as a
 * hint (src/engine/hint-store.ts), and delivers it in throttled batches once the primary is
 * back; hints older than the window are let go (anti-entropy repairs what they carried). A hint
 * for a node that has left or was removed goes to the key's replicas under the current ring
 * instead: that node never takes it, and the write may be on fewer replicas than its quorum.
 */
export class HintedHandoff {
  private readonly hints: HintStore;
  private readonly delivery: PeriodicTask;

  constructor(private readonly options: HintedHandoffOptions) {
    this.hints = new HintStore(options.space, options.settings);
    this.delivery = new PeriodicTask(
      options.clock,
      () => this.deliverHints(),
      (error) => options.logger.warn({ error: String(error) }, 'hint delivery failed'),
      () => options.settings.intervalMs,
    );
  }

  /** The hint store (the coordinator keeps hints in it; tests and status read it). */
  get store(): HintStore {
    return this.hints;
  }

  /** Loads the stored hints' counts (before any request is served). */
  async load(): Promise<void> {
    await this.hints.load();
  }

  /** Starts delivery rounds. */
  start(): void {
    this.delivery.arm(this.options.settings.intervalMs);
  }

  /** Stops delivery rounds. */
  stop(): void {
    this.delivery.stop();
  }

  /** Keeps a peer's replica-put for `target` (this node is its fallback) as a hint. */
  async keep(request: ReplicaPutRequest, target: string): Promise<PeerReply> {
    const stored = await this.hints.add(
      target,
      encodeDataKey(request.bucket, request.key),
      request.object,
      request.mode,
      this.options.clock.nowMs(),
      request.sync,
    );
    // A dropped hint must not count for w: the coordinator sees a failed replica instead.
    if (!stored) {
      return {
        type: 'error',
        code: 'KV_OVERLOADED',
        message: `this fallback holds as many hints for ${target} as hintedHandoff.maxHintsPerTarget / maxBytesPerTarget allow; anti-entropy will repair it`,
      };
    }
    return { type: 'replica-put-reply', durable: request.sync };
  }

  /** One throttled round of hint delivery: a batch per live target; expired hints are dropped and counted. */
  async deliverHints(): Promise<void> {
    const { windowMs, batchSize } = this.options.settings;
    const now = this.options.clock.nowMs();
    for (const target of this.hints.targets()) {
      const batch = await this.hints.batch(target, batchSize);
      const live = batch.filter((hint) => hint.createdMs + windowMs >= now);
      for (const hint of batch) if (hint.createdMs + windowMs < now) await this.hints.remove(hint, 'expired');
      // A node that left or was removed never takes a hint again (its id stays out of the ring):
      // the streams of its partitions did not carry a write it missed, so the hint goes to the
      // key's replicas now.
      if (hasDeparted(this.options.memberStatus(target))) {
        await Promise.all(live.map((hint) => this.redirect(hint)));
        continue;
      }
      if (live.length === 0 || !this.options.isUp(target)) continue;
      await Promise.all(
        live.map(async (hint) => {
          const { bucket, key } = Replica.describe(hint.dataKey);
          try {
            // The hint is deleted only once its target has the write durably (synced; the target's
            // group commit makes that about one fsync per batch of hints).
            const reply = await this.options.send(target, { type: 'replica-put', bucket, key, object: hint.object, mode: hint.mode, sync: true });
            if (reply.type !== 'replica-put-reply' || !reply.durable)
              throw new KvError('KV_PEER_UNREACHABLE', `${target} did not store the hint durably; the hint is kept and delivered again`);
            await this.hints.remove(hint, 'delivered');
          } catch (error) {
            this.options.logger.debug({ target, error: String(error) }, 'hint not delivered yet');
          }
        }),
      );
    }
  }

  /**
   * Hands a hint of a departed node to the key's replicas under the current ring (and its planned
   * replicas while a change is under way), this node's own replica included when it is one; the
   * hint is deleted once every one of them has it durably, else it waits for the next round.
   */
  private async redirect(hint: Hint): Promise<void> {
    const ring = this.options.ring();
    if (ring === null) return;
    const { bucket, key } = Replica.describe(hint.dataKey);
    const partition = partitionOfPosition(hint.dataKey.readUInt32BE(0), ring.partitionCount);
    const nVal = this.options.bucketProperties(bucket).nVal;
    const replicas = [...preferenceList(ring, partition, nVal), ...pendingReplicas(ring, partition, nVal)].filter((node) => node !== hint.target);
    if (!replicas.every((node) => node === this.options.selfId || this.options.isUp(node))) return;
    try {
      await Promise.all(
        replicas.map(async (node) => {
          if (node === this.options.selfId) {
            await this.options.replica.mergeByDataKey(hint.dataKey, hint.object, hint.mode, true);
            return;
          }
          const reply = await this.options.send(node, { type: 'replica-put', bucket, key, object: hint.object, mode: hint.mode, sync: true });
          if (reply.type !== 'replica-put-reply' || !reply.durable)
            throw new KvError('KV_PEER_UNREACHABLE', `${node} did not store the redirected hint durably; the hint is kept and delivered again`);
        }),
      );
      await this.hints.remove(hint, 'delivered');
    } catch (error) {
      this.options.logger.debug({ target: hint.target, error: String(error) }, 'hint for a departed node not redirected yet');
    }
  }

  /** What GET /status shows of the hints. */
  status(): HintStatus {
    const hints = this.hints;
    return { pending: hints.pending, delivered: hints.delivered, expired: hints.expired, dropped: hints.dropped, byTarget: hints.pendingByTarget() };
  }
}
