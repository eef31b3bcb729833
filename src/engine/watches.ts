import type { PeerReply, PeerRequest, WatchPollReply } from '../core/wire/messages.js';
import type { Dot, VersionedObject } from '../core/versioning/versioned-object.js';
import { type LogCursor, type WatchFilter, decodeWatchId, encodeWatchId } from '../core/watch/watch-cursor.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import { KvError } from '../util/errors.js';

/** The bounds and timing of the watches this node serves (config `watch`, and limits.peerTimeoutMs). */
export interface WatchSettings {
  readonly maxWatchers: number;
  readonly maxQueuedEvents: number;
  readonly pollWaitMs: number;
  readonly peerTimeoutMs: number;
}

/** What the watches of a node need: the nodes to read and how to reach them. */
export interface WatchesDependencies {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly send: (node: string, request: PeerRequest, timeoutMs?: number) => Promise<PeerReply>;
  /** Every member of the cluster whose log a watch reads (all but those that left or were removed). */
  readonly members: () => readonly string[];
  readonly settings: () => WatchSettings;
}

/**
 * What a watch yields. `write`: one write of a followed key, with the object it left on the node
 * that issued it and its dot. `ready`: every node has been asked once; writes from here on are
 * reported. `compacted`: some writes of `nodes` were lost to the watch (their log restarted or
 * dropped them): read the keys again; writes after this item follow. `progress`: the watch moved
 * past writes it does not follow (only its id changes). `overflow`: the watcher fell
 * maxQueuedEvents behind and is cut off; the watch ends. Every item but overflow carries the id
 * to resume from.
 */
export type WatchItem =
  | { readonly kind: 'write'; readonly id: string; readonly bucket: string; readonly key: string; readonly object: VersionedObject; readonly dot: Dot }
  | { readonly kind: 'ready'; readonly id: string }
  | { readonly kind: 'compacted'; readonly id: string; readonly nodes: readonly string[] }
  | { readonly kind: 'progress'; readonly id: string }
  | { readonly kind: 'overflow'; readonly queued: number };

/** A running watch: its items in order; close() stops it (the iteration then ends). */
export interface WatchStream extends AsyncIterable<WatchItem> {
  close(): void;
}

/** Writes asked for per poll. */
const maxWritesPerPoll = 1000;

/**
 * The watches this node serves (GET /watch): each reads the log of recent writes of every member
 * (src/engine/watch-log.ts) with long polls, from a cursor per member, and merges what they
 * report into one stream of items. A write is reported only by the node that issued its dot (the
 * coordinating replica), at the moment it applied it, so no write is reported twice and none
 * needs de-duplicating, whatever paths (read repair, anti-entropy, handoff, hints) later copy it.
 */
export class Watches {
  private watching = 0;
  private readonly sessions = new Set<WatchStream>();

  constructor(private readonly dependencies: WatchesDependencies) {}

  /** Watches served now. */
  get count(): number {
    return this.watching;
  }

  /**
   * Starts a watch from now, or from the event id a client received last (Last-Event-ID);
   * KV_OVERLOADED when this node already serves watch.maxWatchers, KV_BAD_REQUEST for an id
   * that is no watch's.
   */
  watch(filter: WatchFilter, resumeFrom?: string): WatchStream {
    const cursors = resumeFrom === undefined ? new Map<string, LogCursor>() : decodeWatchId(resumeFrom);
    const { maxWatchers } = this.dependencies.settings();
    if (this.watching >= maxWatchers) {
      throw new KvError('KV_OVERLOADED', `this node serves ${this.watching} watches, watch.maxWatchers; watch on another node, or close a watch first`, { retryAfterSeconds: 1 });
    }
    this.watching += 1;
    const session: WatchSession = new WatchSession(this.dependencies, filter, cursors, () => {
      this.watching -= 1;
      this.sessions.delete(session);
    });
    this.sessions.add(session);
    return session;
  }

  /** Ends every watch (the node is stopping): each stream ends after what it has queued. */
  closeAll(): void {
    for (const session of [...this.sessions]) session.close();
  }
}

class WatchSession implements WatchStream {
  private readonly queue: WatchItem[] = [];
  private waiting: (() => void) | undefined;
  private closed = false;
  private readonly polling = new Set<string>();
  /** Nodes whose first poll failed: when one answers later, writes it made meanwhile may be lost (compacted). */
  private readonly missedStart = new Set<string>();
  /** Nodes not yet asked once; the watch is ready when none is left. */
  private readonly unasked = new Set<string>();
  private readySent = false;

  constructor(
    private readonly dependencies: WatchesDependencies,
    private readonly filter: WatchFilter,
    private readonly cursors: Map<string, LogCursor>,
    private readonly release: () => void,
  ) {
    for (const node of dependencies.members()) this.unasked.add(node);
    this.syncTargets();
    this.checkReady();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
    this.wakeReader();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WatchItem> {
    try {
      for (;;) {
        const item = this.queue.shift();
        if (item !== undefined) {
          yield item;
          continue;
        }
        if (this.closed) return;
        await new Promise<void>((resolve) => {
          this.waiting = resolve;
        });
      }
    } finally {
      this.close();
    }
  }

  /** Starts a poll loop for every member not polled yet (members that join later are polled from their head). */
  private syncTargets(): void {
    if (this.closed) return;
    for (const node of this.dependencies.members()) {
      if (this.polling.has(node)) continue;
      this.polling.add(node);
      this.pollLoop(node).catch((error: unknown) => {
        this.dependencies.logger.error({ err: error, node }, 'a watch poll loop failed');
        this.polling.delete(node);
      });
    }
  }

  private async pollLoop(node: string): Promise<void> {
    const { clock, send } = this.dependencies;
    while (!this.closed) {
      if (!this.dependencies.members().includes(node)) break;
      const settings = this.dependencies.settings();
      const waitMs = Math.max(0, Math.min(settings.pollWaitMs, Math.floor(settings.peerTimeoutMs / 2)));
      let reply: PeerReply;
      try {
        reply = await send(node, { type: 'watch-poll', filter: this.filter, cursor: this.cursors.get(node) ?? null, waitMs, maxWrites: maxWritesPerPoll }, settings.peerTimeoutMs);
      } catch {
        // Unreachable or refusing: ask again later from the same cursor, so nothing is skipped.
        if (!this.cursors.has(node)) this.missedStart.add(node);
        this.asked(node);
        await clock.sleep(waitMs);
        continue;
      }
      if (this.closed) break;
      if (reply.type === 'watch-poll-reply') this.take(node, reply);
      this.asked(node);
      this.syncTargets();
    }
    this.polling.delete(node);
  }

  /** Queues what one poll of `node` answered, moving its cursor along. */
  private take(node: string, reply: WatchPollReply): void {
    const previous = this.cursors.get(node);
    if (previous === undefined || reply.gap) {
      this.cursors.set(node, { epoch: reply.epoch, seq: reply.next });
      if (reply.gap || this.missedStart.delete(node)) this.push({ kind: 'compacted', id: this.id(), nodes: [node] });
      else if (this.readySent) this.push({ kind: 'progress', id: this.id() });
      return;
    }
    for (const write of reply.writes) {
      this.cursors.set(node, { epoch: reply.epoch, seq: write.seq });
      this.push({ kind: 'write', id: this.id(), bucket: this.filter.bucket, key: write.key, object: write.object, dot: write.dot });
    }
    if (reply.next > (this.cursors.get(node)?.seq ?? 0)) {
      this.cursors.set(node, { epoch: reply.epoch, seq: reply.next });
      this.push({ kind: 'progress', id: this.id() });
    }
  }

  private asked(node: string): void {
    if (this.unasked.delete(node)) this.checkReady();
  }

  private checkReady(): void {
    if (this.readySent || this.unasked.size > 0) return;
    this.readySent = true;
    this.push({ kind: 'ready', id: this.id() });
  }

  private id(): string {
    return encodeWatchId(this.cursors);
  }

  /** Queues an item; a watcher maxQueuedEvents behind is cut off with `overflow` instead of queueing without bound. */
  private push(item: WatchItem): void {
    if (this.closed) return;
    // Progress only moves the id: the newest one replaces one still queued.
    const last = this.queue.at(-1);
    if (item.kind === 'progress' && last?.kind === 'progress') this.queue.pop();
    if (this.queue.length >= this.dependencies.settings().maxQueuedEvents) {
      const queued = this.queue.length;
      this.queue.length = 0;
      this.queue.push({ kind: 'overflow', queued });
      this.close();
      return;
    }
    this.queue.push(item);
    this.wakeReader();
  }

  private wakeReader(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.();
  }
}
