import { encodeDataKey } from '../core/keys.js';
import type { MemberLifecycle } from '../core/membership/membership.js';
import type { PeerReply, PeerRequest, ReplicaPutRequest } from '../core/wire/messages.js';
import { KvError } from '../util/errors.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { KeySpace } from '../ports/storage.js';
import type { NodeConfig } from '../config/schema.js';
import { HintStore } from './hint-store.js';
import { PeriodicTask } from './periodic-task.js';
import { Replica } from './replica.js';

/** What hinted handoff needs from its node. */
export interface HintedHandoffOptions {
  /** The hints sublevel of this node's storage. */
  readonly space: KeySpace;
  readonly settings: NodeConfig['hintedHandoff'];
  readonly clock: Clock;
  readonly logger: Logger;
  readonly isUp: (nodeId: string) => boolean;
  /** A member's lifecycle in the gossiped view (undefined when unknown). */
  readonly memberStatus: (nodeId: string) => MemberLifecycle | undefined;
  readonly send: (nodeId: string, request: PeerRequest) => Promise<PeerReply>;
}

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
 * back; hints older than the window, and hints for removed nodes, are let go (anti-entropy
 * repairs what they carried).
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
    const stored = await this.hints.add(target, encodeDataKey(request.bucket, request.key), request.object, request.mode, this.options.clock.nowMs(), request.sync);
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
      // A removed node never takes a hint again (its id stays removed), so its hints are let go at
      // once, as expired ones are: what they carried lives on in the key's other replicas, which
      // the removal rebuilt, and anti-entropy repairs any of them that missed it.
      const removed = this.options.memberStatus(target) === 'removed';
      const live = removed ? [] : batch.filter((hint) => hint.createdMs + windowMs >= now);
      for (const hint of batch) if (removed || hint.createdMs + windowMs < now) await this.hints.remove(hint, 'expired');
      if (live.length === 0 || !this.options.isUp(target)) continue;
      await Promise.all(
        live.map(async (hint) => {
          const { bucket, key } = Replica.describe(hint.dataKey);
          try {
            // The hint is deleted only once its target has the write durably (synced; the target's
            // group commit makes that about one fsync per batch of hints).
            const reply = await this.options.send(target, { type: 'replica-put', bucket, key, object: hint.object, mode: hint.mode, sync: true });
            if (reply.type !== 'replica-put-reply' || !reply.durable) throw new KvError('KV_PEER_UNREACHABLE', `${target} did not store the hint durably`);
            await this.hints.remove(hint, 'delivered');
          } catch (error) {
            this.options.logger.debug({ target, error: String(error) }, 'hint not delivered yet');
          }
        }),
      );
    }
  }

  /** What GET /status shows of the hints. */
  status(): HintStatus {
    const hints = this.hints;
    return { pending: hints.pending, delivered: hints.delivered, expired: hints.expired, dropped: hints.dropped, byTarget: hints.pendingByTarget() };
  }
}
