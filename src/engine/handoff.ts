import type { BucketProperties } from '../core/buckets.js';
import { decodeDataKey, partitionKeyRange } from '../core/keys.js';
import { type IncomingTransfer, type Ring, incomingTransfers, preferenceList } from '../core/ring/ring.js';
import { decodeObject } from '../core/versioning/object-codec.js';
import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { KeySpace } from '../ports/storage.js';
import { KvError } from '../util/errors.js';
import { PeriodicTask } from './periodic-task.js';
import type { Replica } from './replica.js';

/** Settings of ownership handoff. */
export interface HandoffSettings {
  /** How often transfers and clean-up are looked at. */
  readonly intervalMs: number;
  /** Keys per streamed batch. */
  readonly batchSize: number;
  /**
   * How long a node keeps a partition it no longer replicates before pushing it to the
   * replicas and deleting it, so coordinators still on the old ring do not write into a gap.
   */
  readonly cleanupDelayMs: number;
}

/** What handoff needs from its node. */
export interface HandoffDependencies {
  readonly selfId: string;
  readonly data: KeySpace;
  readonly replica: Replica;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly settings: HandoffSettings;
  ring(): Ring | null;
  isUp(node: string): boolean;
  send(node: string, request: PeerRequest): Promise<PeerReply>;
  bucketProperties(bucket: string): BucketProperties;
  maxNVal(): number;
  /** Partitions this node holds keys of. */
  heldPartitions(): number[];
  /** Tells the cluster (through gossip) that every partition of this ring version has streamed in. */
  reportTransfersDone(ringVersion: number): void;
}

type WireItem = [key: string, value: string];

/** Handoff figures for /status. */
export interface HandoffStatus {
  readonly transfersDoneForRing: number | null;
  readonly partitionsPending: number;
  readonly keysReceived: number;
  readonly keysHandedOff: number;
  readonly partitionsCleaned: number;
}

/**
 * Ownership handoff (Riak's): when the claimant plans a new ring, each node that will replicate
 * a partition it does not replicate yet streams it in, one range scan in batches, from the node
 * giving it up (or another current replica); meanwhile coordinators write to old and new
 * replicas alike. When every receiver has its partitions, the claimant makes the plan the ring.
 * A node then still holding a partition it no longer replicates pushes each key to the current
 * replicas (catching writes that arrived after the stream) and deletes it once they all have it.
 */
export class Handoff {
  private readonly task: PeriodicTask;
  private stopped = false;
  private doneForRing: number | null = null;
  private readonly completed = new Map<number, Set<number>>();
  private readonly notReplicatedSinceMs = new Map<number, number>();
  private partitionsPending = 0;
  private keysReceived = 0;
  private keysHandedOff = 0;
  private partitionsCleaned = 0;

  constructor(private readonly deps: HandoffDependencies) {
    this.task = new PeriodicTask(
      deps.clock,
      () => this.round(),
      (error) => deps.logger.warn({ error: String(error) }, 'handoff round failed'),
      () => deps.settings.intervalMs,
    );
  }

  /** Starts the periodic round. */
  start(): void {
    this.task.arm(this.deps.settings.intervalMs);
  }

  /** Runs a round as soon as possible (a new ring was adopted), instead of at the next interval. */
  runSoon(): void {
    this.task.runSoon();
  }

  /** Stops it; a round under way stops at its next key or batch. */
  stop(): void {
    this.stopped = true;
    this.task.stop();
  }

  /** One round: stream in what a planned ring gives this node, or clean up what the ring took away. */
  async round(): Promise<void> {
    const ring = this.deps.ring();
    if (ring === null) return;
    if (ring.next !== null) await this.receive(ring);
    else await this.cleanUp(ring);
  }

  private async receive(ring: Ring): Promise<void> {
    if (this.doneForRing === ring.version) return;
    const transfers = incomingTransfers(ring, this.deps.selfId, this.deps.maxNVal());
    const done = this.completed.get(ring.version) ?? new Set<number>();
    this.completed.clear();
    this.completed.set(ring.version, done);
    await this.skipEmpty(ring, transfers, done);
    this.partitionsPending = transfers.filter((transfer) => !done.has(transfer.partition)).length;
    for (const transfer of transfers) {
      if (this.stopped || this.deps.ring()?.version !== ring.version) return;
      if (done.has(transfer.partition)) continue;
      const sources = transfer.sources.filter((node) => this.deps.isUp(node));
      for (const source of sources) {
        try {
          await this.pull(transfer.partition, source);
          done.add(transfer.partition);
          this.partitionsPending -= 1;
          break;
        } catch (error) {
          this.deps.logger.debug({ partition: transfer.partition, source, error: String(error) }, 'partition stream failed; trying another source');
        }
      }
    }
    if (transfers.every((transfer) => done.has(transfer.partition))) {
      this.doneForRing = ring.version;
      this.deps.reportTransfersDone(ring.version);
      this.deps.logger.info({ ringVersion: ring.version, partitions: transfers.length }, 'every incoming partition has streamed in');
    }
  }

  /**
   * Marks done, at once, every incoming partition whose source holds no key of it: one question
   * per source instead of one stream per partition, which is what makes a new cluster (all of
   * its partitions empty) form in a round trip. It is the same as streaming those partitions at
   * the moment of the answer: an empty stream. Writes that reach the source later also reach
   * this node as a planned replica, as they do after any stream. A source that cannot answer
   * (an older version, say) is simply streamed from.
   */
  private async skipEmpty(ring: Ring, transfers: readonly IncomingTransfer[], done: Set<number>): Promise<void> {
    const bySource = new Map<string, number[]>();
    for (const transfer of transfers) {
      if (done.has(transfer.partition)) continue;
      const source = transfer.sources.find((node) => this.deps.isUp(node));
      if (source === undefined) continue;
      bySource.set(source, [...(bySource.get(source) ?? []), transfer.partition]);
    }
    await Promise.all(
      [...bySource].map(async ([source, partitions]) => {
        try {
          const reply = await this.deps.send(source, { type: 'control', operation: 'handoff-held', payload: { partitions } });
          if (reply.type !== 'control-reply' || this.deps.ring()?.version !== ring.version) return;
          const held = new Set((reply.payload as { held: number[] }).held);
          for (const partition of partitions) if (!held.has(partition)) done.add(partition);
        } catch (error) {
          this.deps.logger.debug({ source, error: String(error) }, 'could not ask which partitions a source holds; streaming them all');
        }
      }),
    );
  }

  /** Streams one partition from a source, in batches, merging every key. */
  private async pull(partition: number, source: string): Promise<void> {
    let after: string | undefined;
    for (;;) {
      const reply = await this.deps.send(source, {
        type: 'control',
        operation: 'handoff-fetch',
        payload: { partition, after: after ?? null, limit: this.deps.settings.batchSize },
      });
      if (reply.type !== 'control-reply') throw new KvError('KV_PEER_UNREACHABLE', `${source} answered ${reply.type} to handoff-fetch`);
      const { items, done } = reply.payload as { items: WireItem[]; done: boolean };
      for (const [key, encoded] of items) {
        const dataKey = Buffer.from(key, 'base64');
        const { bucket } = decodeDataKey(dataKey);
        await this.deps.replica.mergeByDataKey(dataKey, decodeObject(Buffer.from(encoded, 'base64')), this.deps.bucketProperties(bucket).conflictMode, false);
        this.keysReceived += 1;
      }
      if (done || items.length === 0) return;
      after = items[items.length - 1]?.[0];
    }
  }

  /** Serves a batch of a partition stream: keys after `after`, in storage order. */
  async handleControl(operation: string, payload: unknown): Promise<unknown> {
    if (operation === 'handoff-held') return this.heldAmong(payload);
    if (operation !== 'handoff-fetch') return undefined;
    const { partition, after, limit } = payload as { partition: number; after: string | null; limit: number };
    const ring = this.deps.ring();
    if (ring === null) throw new KvError('KV_NOT_READY', 'no ring yet');
    const range = partitionKeyRange(partition, ring.partitionCount);
    const start = after === null ? range.gte : Buffer.concat([Buffer.from(after, 'base64'), Buffer.of(0)]);
    const bounded = Math.max(1, Math.min(limit, 10_000));
    const items: WireItem[] = [];
    for await (const [key, value] of this.deps.data.entries({ gte: start, ...(range.lt === undefined ? {} : { lt: range.lt }), limit: bounded })) {
      items.push([Buffer.from(key).toString('base64'), Buffer.from(value).toString('base64')]);
    }
    return { items, done: items.length < bounded };
  }

  /** Answers which of the asked partitions this node holds at least one key of (a range scan of one key each). */
  private async heldAmong(payload: unknown): Promise<{ held: number[] }> {
    const ring = this.deps.ring();
    if (ring === null) throw new KvError('KV_NOT_READY', 'no ring yet');
    const asked = (payload as { partitions?: unknown } | null)?.partitions;
    if (!Array.isArray(asked) || asked.length > ring.partitionCount || asked.some((partition) => !Number.isInteger(partition) || partition < 0 || partition >= ring.partitionCount)) {
      throw new KvError('KV_BAD_REQUEST', `handoff-held needs a list of at most ${ring.partitionCount} partition numbers below ${ring.partitionCount}`);
    }
    const held: number[] = [];
    for (const partition of asked as number[]) {
      const range = partitionKeyRange(partition, ring.partitionCount);
      for await (const _entry of this.deps.data.entries({ gte: range.gte, ...(range.lt === undefined ? {} : { lt: range.lt }), limit: 1 })) held.push(partition);
    }
    return { held };
  }

  /** Pushes out and deletes the partitions this node holds but no longer replicates. */
  private async cleanUp(ring: Ring): Promise<void> {
    const now = this.deps.clock.nowMs();
    const nVal = this.deps.maxNVal();
    for (const partition of this.deps.heldPartitions()) {
      if (this.stopped) return;
      if (preferenceList(ring, partition, nVal).includes(this.deps.selfId)) {
        this.notReplicatedSinceMs.delete(partition);
        continue;
      }
      const since = this.notReplicatedSinceMs.get(partition) ?? now;
      this.notReplicatedSinceMs.set(partition, since);
      if (now - since < this.deps.settings.cleanupDelayMs) continue;
      if (await this.handOffPartition(ring, partition)) {
        this.partitionsCleaned += 1;
        this.notReplicatedSinceMs.delete(partition);
      }
    }
  }

  /** Sends every key of a partition to its replicas and deletes it here once all of them have it; true when nothing is left. */
  private async handOffPartition(ring: Ring, partition: number): Promise<boolean> {
    const range = partitionKeyRange(partition, ring.partitionCount);
    let complete = true;
    let page: [Buffer, Uint8Array][] = [];
    const flush = async (): Promise<void> => {
      const results = await Promise.all(page.map(([dataKey, value]) => this.handOffKey(ring, partition, dataKey, value)));
      if (results.includes(false)) complete = false;
      page = [];
    };
    for await (const [key, value] of this.deps.data.entries(range.lt === undefined ? { gte: range.gte } : { gte: range.gte, lt: range.lt })) {
      if (this.stopped) return false;
      page.push([Buffer.from(key), value]);
      // A page of keys goes out together, so the transport batches them per peer.
      if (page.length >= this.deps.settings.batchSize) await flush();
    }
    await flush();
    return complete;
  }

  /** Sends one key to its current replicas and deletes it here once all of them acknowledged; false when it must wait. */
  private async handOffKey(ring: Ring, partition: number, dataKey: Buffer, value: Uint8Array): Promise<boolean> {
    const { bucket, key } = decodeDataKey(dataKey);
    const properties = this.deps.bucketProperties(bucket);
    const replicas = preferenceList(ring, partition, properties.nVal);
    // Pref lists of smaller n_val are prefixes of the largest, so this only keeps keys of odd buckets.
    if (replicas.includes(this.deps.selfId)) return true;
    if (!replicas.every((node) => this.deps.isUp(node))) return false;
    const object = decodeObject(value);
    try {
      await Promise.all(
        replicas.map(async (node) => {
          const reply = await this.deps.send(node, { type: 'replica-put', bucket, key, object, mode: properties.conflictMode, sync: false });
          if (reply.type !== 'replica-put-reply') throw new KvError('KV_PEER_UNREACHABLE', `${node} answered ${reply.type}`);
        }),
      );
    } catch (error) {
      this.deps.logger.debug({ partition, error: String(error) }, 'handoff of a key failed; will retry');
      return false;
    }
    if (!(await this.deps.replica.remove(dataKey, value))) return false;
    this.keysHandedOff += 1;
    return true;
  }

  /** Figures for /status. */
  status(): HandoffStatus {
    return {
      transfersDoneForRing: this.doneForRing,
      partitionsPending: this.partitionsPending,
      keysReceived: this.keysReceived,
      keysHandedOff: this.keysHandedOff,
      partitionsCleaned: this.partitionsCleaned,
    };
  }
}
