import type { Ring } from '../../core/ring/ring.js';
import { decodeObject } from '../../core/versioning/object-codec.js';
import { wireLimits } from '../../core/wire/message-table.js';
import type {
  AntiEntropyDigestRequest,
  AntiEntropyFetchRequest,
  AntiEntropyKeysReply,
  AntiEntropyKeysRequest,
  AntiEntropyLeavesRequest,
  AntiEntropyPushRequest,
  AntiEntropyReapRequest,
  AntiEntropySummaryReply,
  AntiEntropySummaryRequest,
  DifferingPartition,
  ObjectPageReply,
  PeerReply,
  StoredItem,
} from '../../core/wire/messages.js';
import { KvError } from '../../util/errors.js';
import type { Replica } from '../replica.js';
import type { KeyRepair } from './key-repair.js';
import type { TombstoneReaper } from './reaper.js';
import { badRequest } from './shared.js';
import type { TreeKeeper } from './tree-keeper.js';

/** The anti-entropy messages that travel as binary messages of their own. */
export type AntiEntropyRequest =
  | AntiEntropyKeysRequest
  | AntiEntropyFetchRequest
  | AntiEntropyPushRequest
  | AntiEntropySummaryRequest
  | AntiEntropyLeavesRequest
  | AntiEntropyDigestRequest
  | AntiEntropyReapRequest;

/** What the responder needs from its node. */
export interface ResponderDependencies {
  readonly replica: Replica;
  readonly keeper: TreeKeeper;
  readonly repair: KeyRepair;
  readonly reaper: TombstoneReaper;
  readonly settings: { readonly maxPageBytes: number };
  ring(): Ring | null;
}

/**
 * The responder: answers a peer's side of an exchange (summary of roots, leaf hashes, key
 * comparison, object pages and pushes) and the reaper's digest and reap questions, each checked
 * and bounded before it touches state (there is no JSON control form of any of them: docs/WIRE.md).
 */
export class ExchangeResponder {
  constructor(private readonly deps: ResponderDependencies) {}

  /** Checks a partition number a peer sent: an integer of this ring, or KV_BAD_REQUEST (KV_NOT_READY before a ring). */
  private requirePartition(partition: unknown): number {
    const partitionCount = this.deps.keeper.partitions;
    if (this.deps.ring() === null || partitionCount === 0)
      throw new KvError('KV_NOT_READY', 'this node has no ring yet; retry once it has joined', { retryAfterSeconds: 1 });
    if (typeof partition !== 'number' || !Number.isInteger(partition) || partition < 0 || partition >= partitionCount) {
      // The value is not echoed: a hostile payload could be nested too deep to print.
      throw badRequest(`partition (${typeof partition === 'number' ? partition : typeof partition}) is not one of this ring's ${partitionCount}`);
    }
    return partition;
  }

  /** A partition whose tree can be compared, or KV_NOT_READY while it is being rebuilt. */
  private requireReadyPartition(partition: unknown): number {
    const checked = this.requirePartition(partition);
    if (!this.deps.keeper.isReady(checked))
      throw new KvError('KV_NOT_READY', `the Merkle tree of partition ${checked} is being rebuilt after a restart; retry shortly`, { retryAfterSeconds: 1 });
    return checked;
  }

  /** Checks that every key a peer sent lies in the partition it names. */
  private requireKeysInPartition(partition: number, keys: Iterable<Uint8Array>): void {
    for (const key of keys) if (!this.deps.keeper.inPartition(partition, key)) throw badRequest(`a key outside partition ${partition}`);
  }

  /** Serves the binary side of an exchange, each request checked and bounded. */
  async handleMessage(request: AntiEntropyRequest): Promise<PeerReply> {
    switch (request.type) {
      case 'ae-summary':
        return this.answerSummary(request);
      case 'ae-leaves': {
        const tree = this.deps.keeper.tree(this.requireReadyPartition(request.partition));
        return { type: 'ae-leaves-reply', branches: [...new Set(request.branches)].map((branch) => ({ branch, leaves: tree.leafHashes(branch) })) };
      }
      case 'ae-digest':
        return { type: 'ae-digest-reply', digest: await this.deps.reaper.answerDigest(Buffer.from(request.dataKey)) };
      case 'ae-reap':
        return { type: 'ae-reap-reply', removed: await this.deps.reaper.answerReap(Buffer.from(request.dataKey), request.digest) };
      case 'ae-keys': {
        const partition = this.requirePartition(request.partition);
        this.requireKeysInPartition(
          partition,
          request.items.map((item) => item.dataKey),
        );
        return this.answerKeys(partition, request);
      }
      case 'ae-fetch':
        this.requireKeysInPartition(this.requirePartition(request.partition), request.keys);
        return this.answerFetch(request);
      case 'ae-push': {
        const partition = this.requirePartition(request.partition);
        this.requireKeysInPartition(
          partition,
          request.items.map((item) => item.dataKey),
        );
        return { type: 'ae-push-reply', repaired: await this.deps.repair.mergeItems(partition, request.items) };
      }
    }
  }

  /** The partitions whose roots differ from the sender's, with this side's branch hashes; those still being rebuilt are named apart. */
  private answerSummary(request: AntiEntropySummaryRequest): AntiEntropySummaryReply {
    const differing: DifferingPartition[] = [];
    const notReady: number[] = [];
    const seen = new Set<number>();
    for (const { partition, root } of request.roots) {
      const checked = this.requirePartition(partition);
      if (seen.has(checked)) continue;
      seen.add(checked);
      if (!this.deps.keeper.isReady(checked)) {
        notReady.push(checked);
        continue;
      }
      const tree = this.deps.keeper.tree(checked);
      if (tree.root() !== root) differing.push({ partition: checked, branches: tree.branchHashes() });
    }
    return { type: 'ae-summary-reply', differing, notReady };
  }

  /**
   * The responder's side of the key comparison: what differs, both ways. The reply lists keys
   * only (the objects follow in ae-fetch pages), at most wireLimits.maxKeys of this side's and
   * about maxPageBytes of key bytes; beyond that it is truncated and the next exchange goes on.
   */
  private async answerKeys(partition: number, request: AntiEntropyKeysRequest): Promise<AntiEntropyKeysReply> {
    const theirs = new Map(request.items.map((item) => [Buffer.from(item.dataKey).toString('latin1'), item.digest]));
    const mine = await this.deps.keeper.leafDigests(partition, [...new Set(request.leaves)]);
    const differing: Buffer[] = [];
    let differingBytes = 0;
    let truncated = false;
    for (const [name, entry] of mine) {
      if (theirs.get(name) === entry.digest) continue;
      if (differing.length >= wireLimits.maxKeys || differingBytes >= this.deps.settings.maxPageBytes) {
        truncated = true;
        break;
      }
      differing.push(entry.dataKey);
      differingBytes += entry.dataKey.byteLength;
    }
    const need: Buffer[] = [];
    for (const item of request.items) {
      const name = Buffer.from(item.dataKey).toString('latin1');
      if (mine.get(name)?.digest === item.digest) continue;
      // A key this side reaped is not asked for: the initiator fetches the remembered tombstone instead, and converges.
      if (!mine.has(name) && (await this.deps.replica.reapedBytes(Buffer.from(item.dataKey))) !== undefined) differing.push(Buffer.from(item.dataKey));
      else need.push(Buffer.from(item.dataKey));
    }
    return { type: 'ae-keys-reply', differing, need, truncated };
  }

  /** A page of this side's objects of the keys asked for, in their order, bounded by bytes and count; always one object when any is left. */
  private async answerFetch(request: AntiEntropyFetchRequest): Promise<ObjectPageReply> {
    const maxBytes = Math.min(request.maxBytes, this.deps.settings.maxPageBytes);
    const items: StoredItem[] = [];
    let bytes = 0;
    for (const [index, key] of request.keys.entries()) {
      const stored = (await this.deps.replica.readBytes(Buffer.from(key))) ?? (await this.deps.replica.reapedBytes(Buffer.from(key)));
      if (stored === undefined) continue;
      items.push({ dataKey: key, object: decodeObject(stored) });
      bytes += stored.byteLength;
      const more = index < request.keys.length - 1;
      if (more && (bytes >= maxBytes || items.length >= wireLimits.maxItems)) return { type: 'object-page', items, done: false };
    }
    return { type: 'object-page', items, done: true };
  }
}
