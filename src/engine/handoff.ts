import { decodeDataKey, partitionKeyRange, partitionOfPosition } from '../core/keys.js';
import { type IncomingTransfer, type Ring, incomingTransfers, plannedRing, preferenceList } from '../core/ring/ring.js';
import { replicaGroups } from '../core/consensus/replica-groups.js';
import { decodeObject } from '../core/versioning/object-codec.js';
import { wireLimits } from '../core/wire/message-table.js';
import type { HandoffFetchRequest, HandoffHeldReply, HandoffHeldRequest, ObjectPageReply, StoredItem } from '../core/wire/messages.js';
import type { KeySpace } from '../ports/storage.js';
import { KvError } from '../util/errors.js';
import { PeriodicTask } from './periodic-task.js';
import type { Replica } from './replica.js';
import type { NodeContext } from './node-context.js';

/** Settings of ownership handoff. */
export interface HandoffSettings {
  /** How often transfers and clean-up are looked at. */
  readonly intervalMs: number;
  /** Keys per streamed page (and per clean-up page) at most. */
  readonly batchSize: number;
  /**
   * About how many bytes of values one page carries at most; a page always carries at least one
   * object, so a value larger than a page still moves (alone).
   */
  readonly maxPageBytes: number;
  /**
   * How long a node keeps a partition it no longer replicates before pushing it to the
   * replicas and deleting it, so coordinators still on the old ring do not write into a gap.
   */
  readonly cleanupDelayMs: number;
}

/** What handoff needs from its node. */
export type HandoffDependencies = Pick<NodeContext, 'selfId' | 'clock' | 'logger' | 'ring' | 'isUp' | 'send' | 'bucketProperties' | 'nVals'> & {
  readonly data: KeySpace;
  /** This node's Paxos acceptor state (Storage.paxos): the consistent keys it may hold a decided state of. */
  readonly paxos: KeySpace;
  /** Runs a repair round on a consistent key under this node's ring (ConsistentCoordinator); rejects when it did not finish. */
  repairConsistent(bucket: string, key: string): Promise<void>;
  /** Deletes a consistent key's acceptor state judged stale under ring `ringVersion` (AcceptorStore.collect); false when it was kept. */
  collectAcceptorState(dataKey: Buffer, ringVersion: number): Promise<boolean>;
  readonly replica: Replica;
  readonly settings: HandoffSettings;
  /** Partitions this node holds keys of. */
  heldPartitions(): number[];
  /** How often a partition changed here (a write, a removal): a clean-up sweep of a partition that has not changed since is not repeated. */
  changeCount(partition: number): number;
  /** Tells the cluster (through gossip) that every partition of this ring version has streamed in. */
  reportTransfersDone(ringVersion: number): void;
};

/** Handoff figures for /status. */
export interface HandoffStatus {
  readonly transfersDoneForRing: number | null;
  readonly partitionsPending: number;
  readonly keysReceived: number;
  readonly keysHandedOff: number;
  readonly partitionsCleaned: number;
  /** Consistent keys given a repair round for a ring change (docs/CONSENSUS.md, "Ring changes"). */
  readonly consistentKeysRepaired: number;
  /** Consistent keys whose acceptor state was deleted here after a completed ring change moved them away. */
  readonly consistentKeysCollected: number;
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
  /** The ring version whose consistent keys are being repaired, and the last data key repaired so far (rounds go in key order). */
  private repairedUpTo: { version: number; after: Buffer | null; done: boolean } = { version: 0, after: null, done: false };
  private keysRepaired = 0;
  /** The settled ring whose stale acceptor state is being collected, when it was first seen, and whether a sweep finished. */
  private collecting: { version: number; sinceMs: number; done: boolean } = { version: 0, sinceMs: 0, done: true };
  private keysCollected = 0;
  private readonly notReplicatedSinceMs = new Map<number, number>();
  /**
   * Partitions this node replicates some buckets' keys of but not others' (it is in a larger
   * n_val's preference list, not a smaller one's): the ring version and change count at which a
   * clean-up sweep of them last began, so an unchanged partition is not scanned again.
   */
  private readonly sweptAt = new Map<number, string>();
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
    const transfers = incomingTransfers(ring, this.deps.selfId, this.deps.nVals());
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
          await this.pull(ring, transfer.partition, source);
          done.add(transfer.partition);
          this.partitionsPending -= 1;
          break;
        } catch (error) {
          this.deps.logger.debug({ partition: transfer.partition, source, error: String(error) }, 'partition stream failed; trying another source');
        }
      }
    }
    if (!transfers.every((transfer) => done.has(transfer.partition))) return;
    if (!(await this.repairConsistent(ring))) return;
    this.doneForRing = ring.version;
    this.deps.reportTransfersDone(ring.version);
    this.deps.logger.info(
      { ringVersion: ring.version, partitions: transfers.length },
      'every incoming partition has streamed in and every moving consistent key held here is repaired',
    );
  }

  /**
   * Step 3 of a ring change for consistent buckets (docs/CONSENSUS.md, "Ring changes"): every
   * consistent key this node holds acceptor state of, in a partition whose replica group the
   * planned ring changes and whose current group includes this node, gets a repair round under
   * the joint ring. The round re-proposes the newest decided state with a fresh ballot to a
   * majority of the old group and of the new one, so the new group alone holds it once the
   * change completes, and it raises the key's epoch fence at a majority of the old group. A key
   * decided before the change sits on a majority of its old group, so it is repaired by every
   * member of that majority that reports done; the claimant waits for a majority of each old
   * group (src/engine/claimant.ts). True when every such key is repaired; false (tried again
   * next round, from the key it stopped at) when a round failed or the ring moved on.
   */
  private async repairConsistent(ring: Ring): Promise<boolean> {
    if (this.repairedUpTo.version !== ring.version) this.repairedUpTo = { version: ring.version, after: null, done: false };
    if (this.repairedUpTo.done) return true;
    for (;;) {
      const after = this.repairedUpTo.after;
      const page: { dataKey: Buffer; bucket: string; key: string }[] = [];
      for await (const [stored] of this.deps.paxos.entries({
        ...(after === null ? {} : { gte: Buffer.concat([after, Buffer.of(0)]) }),
        limit: this.deps.settings.batchSize,
      })) {
        const dataKey = Buffer.from(stored);
        const { bucket, key } = decodeDataKey(dataKey);
        page.push({ dataKey, bucket, key });
      }
      if (page.length === 0) {
        this.repairedUpTo = { ...this.repairedUpTo, done: true };
        return true;
      }
      const moving = page.filter(({ dataKey, bucket }) => {
        const properties = this.deps.bucketProperties(bucket);
        if (properties.consistent !== true) return false;
        const groups = replicaGroups(ring, partitionOfPosition(dataKey.readUInt32BE(0), ring.partitionCount), properties.nVal);
        return groups.length === 2 && (groups[0] ?? []).includes(this.deps.selfId);
      });
      const results = await Promise.all(
        moving.map(({ bucket, key }) =>
          this.deps.repairConsistent(bucket, key).then(
            () => true,
            (error: unknown) => {
              this.deps.logger.debug({ bucket, key, error: String(error) }, 'repair round of a consistent key failed; the ring change waits for it');
              return false;
            },
          ),
        ),
      );
      if (this.stopped || this.deps.ring()?.version !== ring.version || results.includes(false)) return false;
      this.keysRepaired += moving.length;
      this.repairedUpTo = { ...this.repairedUpTo, after: (page[page.length - 1] as (typeof page)[number]).dataKey };
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
          const reply = await this.deps.send(source, { type: 'handoff-held', partitions });
          if (reply.type !== 'handoff-held-reply' || this.deps.ring()?.version !== ring.version) return;
          const held = new Set(reply.held);
          for (const partition of partitions) if (!held.has(partition)) done.add(partition);
        } catch (error) {
          this.deps.logger.debug({ source, error: String(error) }, 'could not ask which partitions a source holds; streaming them all');
        }
      }),
    );
  }

  /**
   * Streams one partition from a source, a page at a time, merging every key. The last merge of
   * each page is synced: LevelDB has one log, so that fsync makes the whole page durable before
   * the next page is asked for, and the stream is reported done (after which the source may
   * delete its copy) only once every page is on disk.
   */
  private async pull(ring: Ring, partition: number, source: string): Promise<void> {
    // The source also holds keys of buckets whose smaller n_val leaves this node out of the plan;
    // those are not taken (clean-up would only have to push them back out).
    const planned = plannedRing(ring);
    const willReplicate = (bucket: string): boolean => preferenceList(planned, partition, this.deps.bucketProperties(bucket).nVal).includes(this.deps.selfId);
    let after: Uint8Array | null = null;
    for (;;) {
      const request: HandoffFetchRequest = {
        type: 'handoff-fetch',
        partition,
        after,
        maxKeys: this.deps.settings.batchSize,
        maxBytes: this.deps.settings.maxPageBytes,
      };
      const reply = await this.deps.send(source, request);
      if (reply.type !== 'object-page')
        throw new KvError(
          'KV_PEER_UNREACHABLE',
          `${source} answered ${reply.type} to handoff-fetch; the transfer is retried (run the same ringkv version on every node)`,
        );
      const taken: { dataKey: Buffer; item: StoredItem; bucket: string }[] = [];
      for (const item of reply.items) {
        const dataKey = Buffer.from(item.dataKey);
        if (partitionOfPosition(dataKey.readUInt32BE(0), ring.partitionCount) !== partition) {
          throw new KvError(
            'KV_PEER_UNREACHABLE',
            `${source} sent a key outside partition ${partition} in its handoff page; nothing of the page was taken and the transfer is retried (run the same ringkv version and partitionCount on every node)`,
          );
        }
        const { bucket } = decodeDataKey(dataKey);
        if (willReplicate(bucket)) taken.push({ dataKey, item, bucket });
      }
      for (const [index, { dataKey, item, bucket }] of taken.entries()) {
        await this.deps.replica.mergeByDataKey(dataKey, item.object, this.deps.bucketProperties(bucket).conflictMode, index === taken.length - 1);
        this.keysReceived += 1;
      }
      if (reply.done) return;
      const last = reply.items[reply.items.length - 1];
      if (last === undefined)
        throw new KvError(
          'KV_PEER_UNREACHABLE',
          `${source} answered handoff-fetch with an empty page that is not the last; the transfer is retried (run the same ringkv version on every node)`,
        );
      after = last.dataKey;
    }
  }

  /**
   * Answers which of the asked partitions this node holds at least one key of (a range scan of
   * one key each). The partitions are checked against the ring first (KV_BAD_REQUEST).
   */
  async handleHeld(request: HandoffHeldRequest): Promise<HandoffHeldReply> {
    const ring = this.deps.ring();
    if (ring === null) throw new KvError('KV_NOT_READY', 'this node has no ring yet; retry once it has joined', { retryAfterSeconds: 1 });
    if (request.partitions.length > ring.partitionCount || request.partitions.some((partition) => partition >= ring.partitionCount)) {
      throw new KvError(
        'KV_BAD_REQUEST',
        `handoff-held needs a list of at most ${ring.partitionCount} partition numbers below ${ring.partitionCount}; the peer is on another ring or misbehaving`,
      );
    }
    const held: number[] = [];
    for (const partition of request.partitions) {
      const range = partitionKeyRange(partition, ring.partitionCount);
      for await (const _entry of this.deps.data.entries({ gte: range.gte, ...(range.lt === undefined ? {} : { lt: range.lt }), limit: 1 }))
        held.push(partition);
    }
    return { type: 'handoff-held-reply', held };
  }

  /**
   * Serves a page of a partition stream: keys after `after`, in storage order, at most the keys
   * and (about) the bytes asked for and this node's own page bounds, but at least one object.
   * The request is checked against the ring first (KV_BAD_REQUEST when it is not for it).
   */
  async handleFetch(request: HandoffFetchRequest): Promise<ObjectPageReply> {
    const ring = this.deps.ring();
    if (ring === null) throw new KvError('KV_NOT_READY', 'this node has no ring yet; retry once it has joined', { retryAfterSeconds: 1 });
    if (request.partition >= ring.partitionCount) {
      throw new KvError(
        'KV_BAD_REQUEST',
        `handoff-fetch of partition ${request.partition}, but the ring has ${ring.partitionCount}; the peer is on another ring or misbehaving`,
      );
    }
    const range = partitionKeyRange(request.partition, ring.partitionCount);
    if (request.after !== null && partitionOfPosition(Buffer.from(request.after).readUInt32BE(0), ring.partitionCount) !== request.partition) {
      throw new KvError('KV_BAD_REQUEST', `handoff-fetch of partition ${request.partition} continues after a key of another partition`);
    }
    // The smallest key after `after` is `after` followed by a zero byte.
    const start = request.after === null ? range.gte : Buffer.concat([request.after, Buffer.of(0)]);
    const maxKeys = Math.min(request.maxKeys, this.deps.settings.batchSize, wireLimits.maxPageKeys);
    const maxBytes = Math.min(request.maxBytes, this.deps.settings.maxPageBytes);
    const items: StoredItem[] = [];
    let bytes = 0;
    let full = false;
    for await (const [key, value] of this.deps.data.entries({ gte: start, ...(range.lt === undefined ? {} : { lt: range.lt }), limit: maxKeys })) {
      items.push({ dataKey: Buffer.from(key), object: decodeObject(value) });
      bytes += value.byteLength;
      if (bytes >= maxBytes) {
        full = true;
        break;
      }
    }
    return { type: 'object-page', items, done: !full && items.length < maxKeys };
  }

  /**
   * Pushes out and deletes the keys this node holds but no longer replicates, each judged by its
   * own bucket's n_val: a node still in a partition's largest preference list may have left a
   * smaller one's, and a copy kept there would never be compared or reaped again.
   */
  private async cleanUp(ring: Ring): Promise<void> {
    const now = this.deps.clock.nowMs();
    const nVals = this.deps.nVals();
    const smallest = nVals[0] ?? 1;
    for (const partition of this.deps.heldPartitions()) {
      if (this.stopped) return;
      // In the smallest n_val's list, this node replicates every bucket's keys of the partition.
      if (preferenceList(ring, partition, smallest).includes(this.deps.selfId)) {
        this.notReplicatedSinceMs.delete(partition);
        this.sweptAt.delete(partition);
        continue;
      }
      const mark = `${ring.version}:${this.deps.changeCount(partition)}`;
      if (this.sweptAt.get(partition) === mark) continue;
      const since = this.notReplicatedSinceMs.get(partition) ?? now;
      this.notReplicatedSinceMs.set(partition, since);
      if (now - since < this.deps.settings.cleanupDelayMs) continue;
      if (await this.handOffPartition(ring, partition)) {
        this.partitionsCleaned += 1;
        this.notReplicatedSinceMs.delete(partition);
        // Marked as it was before the sweep: the sweep's own removals change the count, so one
        // more sweep (that finds nothing) follows, and none after it until the partition changes.
        this.sweptAt.set(partition, mark);
      }
    }
    await this.collectAcceptorState(ring);
  }

  /**
   * Deletes the acceptor state of consistent keys whose replica group, on this settled ring (no
   * change planned), no longer includes this node (docs/CONSENSUS.md, "Ring changes"). Safe once
   * the change completed: the claimant completed it only after every moving key was repaired onto
   * a majority of its new group, so every round from then on needs a majority of the new group
   * (a joint round too) and never this node's state; and a proposer on an older ring is refused
   * here by this node's own ring (AcceptorStore), record or not. Not during a change: until it
   * completes a majority of the old group may be the only holder of a decided state. One sweep of
   * the `paxos` space per ring version, cleanupDelayMs after this node first held it, as plain
   * clean-up waits; a key kept (a newer ring reached it) or a failed page ends the sweep, to be
   * tried again at the next round.
   */
  private async collectAcceptorState(ring: Ring): Promise<void> {
    const now = this.deps.clock.nowMs();
    if (this.collecting.version !== ring.version) this.collecting = { version: ring.version, sinceMs: now, done: false };
    if (this.collecting.done || now - this.collecting.sinceMs < this.deps.settings.cleanupDelayMs) return;
    let after: Buffer | null = null;
    for (;;) {
      const page: Buffer[] = [];
      for await (const [stored] of this.deps.paxos.entries({
        ...(after === null ? {} : { gte: Buffer.concat([after, Buffer.of(0)]) }),
        limit: this.deps.settings.batchSize,
      }))
        page.push(Buffer.from(stored));
      if (page.length === 0) break;
      const stale = page.filter((dataKey) => {
        const properties = this.deps.bucketProperties(decodeDataKey(dataKey).bucket);
        return (
          properties.consistent === true &&
          !preferenceList(ring, partitionOfPosition(dataKey.readUInt32BE(0), ring.partitionCount), properties.nVal).includes(this.deps.selfId)
        );
      });
      const results = await Promise.all(stale.map((dataKey) => this.deps.collectAcceptorState(dataKey, ring.version)));
      this.keysCollected += results.filter(Boolean).length;
      if (this.stopped || this.deps.ring()?.version !== ring.version || results.includes(false)) return;
      after = page[page.length - 1] as Buffer;
    }
    this.collecting = { ...this.collecting, done: true };
  }

  /** Sends every key of a partition to its replicas and deletes it here once all of them have it; true when nothing is left. */
  private async handOffPartition(ring: Ring, partition: number): Promise<boolean> {
    const range = partitionKeyRange(partition, ring.partitionCount);
    let complete = true;
    let page: [Buffer, Uint8Array][] = [];
    let pageBytes = 0;
    const flush = async (): Promise<void> => {
      const results = await Promise.all(page.map(([dataKey, value]) => this.handOffKey(ring, partition, dataKey, value)));
      if (results.includes(false)) complete = false;
      page = [];
      pageBytes = 0;
    };
    for await (const [key, value] of this.deps.data.entries(range.lt === undefined ? { gte: range.gte } : { gte: range.gte, lt: range.lt })) {
      if (this.stopped) return false;
      page.push([Buffer.from(key), value]);
      pageBytes += value.byteLength;
      // A page of keys goes out together, so the transport batches them per peer; it closes at
      // a count or a size, so large values never gather in memory by the hundred.
      if (page.length >= this.deps.settings.batchSize || pageBytes >= this.deps.settings.maxPageBytes) await flush();
    }
    await flush();
    return complete;
  }

  /**
   * Sends one key to its current replicas and deletes it here once all of them acknowledged it
   * durably (a synced write: the receiver's group commit makes that one fsync per page); false
   * when it must wait.
   */
  private async handOffKey(ring: Ring, partition: number, dataKey: Buffer, value: Uint8Array): Promise<boolean> {
    const { bucket, key } = decodeDataKey(dataKey);
    const properties = this.deps.bucketProperties(bucket);
    const replicas = preferenceList(ring, partition, properties.nVal);
    // A key of a bucket this node still replicates stays (its partition is only partly let go).
    if (replicas.includes(this.deps.selfId)) return true;
    if (!replicas.every((node) => this.deps.isUp(node))) return false;
    const object = decodeObject(value);
    try {
      await Promise.all(
        replicas.map(async (node) => {
          const reply = await this.deps.send(node, { type: 'replica-put', bucket, key, object, mode: properties.conflictMode, sync: true });
          if (reply.type !== 'replica-put-reply')
            throw new KvError('KV_PEER_UNREACHABLE', `${node} answered ${reply.type} to a handoff replica-put; the key stays here and its handoff is retried`);
          if (!reply.durable) throw new KvError('KV_PEER_UNREACHABLE', `${node} did not store the key durably; the key stays here and its handoff is retried`);
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
      consistentKeysRepaired: this.keysRepaired,
      consistentKeysCollected: this.keysCollected,
    };
  }
}
