import type { PeerReply, PeerRequest, WatchPollReply } from '../core/wire/messages.js';
import type { Dot, VersionedObject } from '../core/versioning/versioned-object.js';
import type { LoggedWrite } from '../core/wire/messages.js';
import { type LogCursor, type WatchFilter, type WatchPosition, decodeWatchId, encodeWatchId, maxWatchIdVersions } from '../core/watch/watch-cursor.js';
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
  /** Whether this node's view holds `node` as left or removed (a node it has not heard of yet is neither). */
  readonly departed: (node: string) => boolean;
  /**
   * Resolves once the departed `node` can decide nothing more that its log would hold after the
   * watch's last read of it (src/engine/departure-fence.ts), or once `stopped()` (the node stops
   * serving watches) turns true.
   */
  readonly fenceDeparture: (node: string, stopped: () => boolean) => Promise<void>;
  readonly settings: () => WatchSettings;
}

/**
 * What a watch yields. `write`: one write of a followed key, with the object it left on the node
 * that issued it and its dot. `decided`: one decided write of a consistent key, its version and
 * value (the register's bytes, null when deleted), each version once and in order per key.
 * `ready`: every node has been asked once; writes from here on are
 * reported. `compacted`: some writes of `nodes` were lost to the watch (their log restarted or
 * dropped them), or (with `key`) versions `missing` of a consistent key were never reported
 * (their proposer's log was lost): read the keys again; writes after this item follow. `progress`: the watch moved
 * past writes it does not follow (only its id changes). `overflow`: the watcher fell
 * maxQueuedEvents behind and is cut off; the watch ends. Every item but overflow carries the id
 * to resume from.
 */
export type WatchItem =
  | { readonly kind: 'write'; readonly id: string; readonly bucket: string; readonly key: string; readonly object: VersionedObject; readonly dot: Dot }
  | {
      readonly kind: 'decided';
      readonly id: string;
      readonly bucket: string;
      readonly key: string;
      readonly version: number;
      readonly value: Uint8Array | null;
    }
  | { readonly kind: 'ready'; readonly id: string }
  | {
      readonly kind: 'compacted';
      readonly id: string;
      readonly nodes: readonly string[];
      readonly key?: string;
      readonly missing?: { readonly from: number; readonly to: number };
    }
  | { readonly kind: 'progress'; readonly id: string }
  | { readonly kind: 'overflow'; readonly queued: number };

/** A running watch: its items in order; close() stops it (the iteration then ends after what is queued); `closed` settles once it is stopped (by close() or an overflow). */
export interface WatchStream extends AsyncIterable<WatchItem> {
  close(): void;
  readonly closed: Promise<void>;
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
  /** The fence under way per departed node, shared by every watch of this node (one push per member, not one per watch). */
  private readonly fences = new Map<string, Promise<void>>();
  private stopping = false;

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
    const position: WatchPosition =
      resumeFrom === undefined ? { cursors: new Map<string, LogCursor>(), versions: new Map<string, number>() } : decodeWatchId(resumeFrom);
    const { maxWatchers } = this.dependencies.settings();
    if (this.watching >= maxWatchers) {
      throw new KvError('KV_OVERLOADED', `this node serves ${this.watching} watches, watch.maxWatchers; watch on another node, or close a watch first`, {
        retryAfterSeconds: 1,
      });
    }
    this.watching += 1;
    const session: WatchSession = new WatchSession(
      this.dependencies,
      filter,
      position,
      resumeFrom === undefined,
      async (node) => this.fence(node),
      () => {
        this.watching -= 1;
        this.sessions.delete(session);
      },
    );
    this.sessions.add(session);
    return session;
  }

  /** Ends every watch (the node is stopping): each stream ends after what it has queued. */
  closeAll(): void {
    this.stopping = true;
    for (const session of [...this.sessions]) session.close();
  }

  /** Resolves once the departed `node` is fenced (fenceDeparture); forgotten once it is, so a later watch fences it again. */
  private async fence(node: string): Promise<void> {
    let fence = this.fences.get(node);
    if (fence === undefined) {
      fence = this.dependencies.fenceDeparture(node, () => this.stopping).finally(() => this.fences.delete(node));
      this.fences.set(node, fence);
    }
    return fence;
  }
}

/** What a watch asked of one node's log: polls sent, the newest (by count) that read to the head of the log, polls failed. */
interface PollCounts {
  readonly sent: number;
  readonly headReached: number;
  readonly failed: number;
}

/** A log held at a consistent write: where, every other node's poll counts when it began, the writes from it on, and how often it was checked. */
interface Hold {
  readonly seq: number;
  readonly since: ReadonlyMap<string, PollCounts>;
  readonly tail: readonly LoggedWrite[];
  readonly checks: number;
}

/** The most times a hold is checked (one poll of the held log each) before it gives up waiting. */
const maxHoldChecks = 100;

class WatchSession implements WatchStream {
  private readonly queue: WatchItem[] = [];
  private waiting: (() => void) | undefined;
  private stopped = false;
  private markClosed: () => void = () => undefined;
  readonly closed = new Promise<void>((resolve) => {
    this.markClosed = resolve;
  });
  private readonly polling = new Set<string>();
  /** Departed nodes whose fence held (fenceDeparture): their log is read the last time. */
  private readonly fenced = new Set<string>();
  /** Nodes whose first poll failed: when one answers later, writes it made meanwhile may be lost (compacted). */
  private readonly missedStart = new Set<string>();
  /** Nodes not yet asked once; the watch is ready when none is left. */
  private readonly unasked = new Set<string>();
  private readySent = false;
  /** Members whose log this watch reads from the head (a fresh watch's first members). */
  private readonly fromHead = new Set<string>();
  private readonly cursors: Map<string, LogCursor>;
  /** The version reported last per consistent key (oldest reported first), at most maxWatchIdVersions. */
  private readonly versions: Map<string, number>;
  /** Per node, the polls sent to it, the newest that reached the head of its log, and the polls that failed. */
  private readonly polls = new Map<string, PollCounts>();
  /**
   * Per node, the consistent write its log is held at while an older version of its key may
   * still come from another log, and every other node's poll counts when the hold began.
   */
  private readonly holds = new Map<string, Hold>();

  constructor(
    private readonly dependencies: WatchesDependencies,
    private readonly filter: WatchFilter,
    position: WatchPosition,
    fresh: boolean,
    /** Resolves once a departed node can log nothing more (Watches.fence). */
    private readonly fence: (node: string) => Promise<void>,
    private readonly release: () => void,
  ) {
    this.cursors = position.cursors;
    // A fresh watch starts at the head of the logs of the members it begins with; any other log
    // it has no cursor for (a member that joined since, or one a resumed id does not name) is
    // read from its start, so writes it made before this watch first asked it are not skipped.
    if (fresh) for (const node of dependencies.members()) this.fromHead.add(node);
    this.versions = position.versions;
    for (const node of dependencies.members()) this.unasked.add(node);
    this.syncTargets();
    this.checkReady();
  }

  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.markClosed();
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
        if (this.stopped) return;
        await new Promise<void>((resolve) => {
          this.waiting = resolve;
        });
      }
    } finally {
      this.close();
    }
  }

  /**
   * Starts a poll loop for every member not polled yet (members that join later are polled from
   * their head), and for every departed node the watch's id still names: a resumed id may point
   * before writes such a node made before it went, which only its log holds.
   */
  private syncTargets(): void {
    if (this.stopped) return;
    const departed = [...this.cursors.keys()].filter((node) => this.dependencies.departed(node));
    for (const node of [...this.dependencies.members(), ...departed]) {
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
    while (!this.stopped) {
      // A node that left (or was removed) is read to the end of its log once more, without
      // waiting: its last writes may not have been read yet. If it no longer answers, they may be missing.
      const member = this.dependencies.members().includes(node);
      if (!member && !this.cursors.has(node)) {
        // It went before any poll of it was answered: what it wrote before that may be missing.
        if (this.missedStart.delete(node)) this.push({ kind: 'compacted', id: this.id(), nodes: [node] });
        break;
      }
      if (!member && !this.fenced.has(node)) {
        // Its last read waits until it can log nothing more (a node removed while it ran may not have heard yet).
        await Promise.race([this.fence(node), this.closed]);
        this.fenced.add(node);
        if (this.stopped) break;
      }
      const settings = this.dependencies.settings();
      const waitMs = member ? Math.max(0, Math.min(settings.pollWaitMs, Math.floor(settings.peerTimeoutMs / 2))) : 0;
      let reply: PeerReply;
      const counts = this.polls.get(node) ?? { sent: 0, headReached: 0, failed: 0 };
      const poll = counts.sent + 1;
      this.polls.set(node, { ...counts, sent: poll });
      try {
        reply = await send(
          node,
          { type: 'watch-poll', filter: this.filter, cursor: this.cursors.get(node) ?? null, waitMs, maxWrites: maxWritesPerPoll },
          settings.peerTimeoutMs,
        );
      } catch {
        if (!member) {
          this.settleDeparted(node, true);
          break;
        }
        // Unreachable or refusing: ask again later from the same cursor, so nothing is skipped.
        const now = this.polls.get(node)!;
        this.polls.set(node, { ...now, failed: now.failed + 1 });
        if (!this.cursors.has(node)) this.missedStart.add(node);
        this.asked(node);
        await clock.sleep(waitMs);
        continue;
      }
      if (this.stopped) break;
      if (reply.type === 'watch-poll-reply' && reply.writes.length < maxWritesPerPoll) this.polls.set(node, { ...this.polls.get(node)!, headReached: poll });
      const held = reply.type === 'watch-poll-reply' && this.take(node, reply) === 'held';
      this.asked(node);
      this.syncTargets();
      if (!member && !held && (reply.type !== 'watch-poll-reply' || reply.writes.length < maxWritesPerPoll)) {
        this.settleDeparted(node, reply.type !== 'watch-poll-reply');
        break;
      }
      // Held at a consistent write whose older versions may come from other logs: ask again soon from the same place.
      if (held) await clock.sleep(Math.max(5, Math.floor(settings.pollWaitMs / 10)));
    }
    this.polling.delete(node);
  }

  /**
   * Queues what one poll of `node` answered, moving its cursor along; 'held' when it stopped at a
   * consistent write whose older versions have not arrived yet (the cursor stays before it).
   */
  private take(node: string, reply: WatchPollReply): 'taken' | 'held' {
    const previous = this.cursors.get(node);
    if (previous === undefined || reply.gap) {
      this.holds.delete(node);
      this.cursors.set(node, {
        epoch: reply.epoch,
        seq: previous === undefined && !reply.gap && !this.fromHead.has(node) && !this.missedStart.has(node) ? 0 : reply.next,
      });
      if (reply.gap || this.missedStart.delete(node)) this.push({ kind: 'compacted', id: this.id(), nodes: [node] });
      else if (this.readySent) this.push({ kind: 'progress', id: this.id() });
      return 'taken';
    }
    for (const [index, write] of reply.writes.entries()) {
      if (write.kind === 'consistent' && this.holdAt(node, write, reply.writes.slice(index))) {
        this.cursors.set(node, { epoch: reply.epoch, seq: write.seq - 1 });
        return 'held';
      }
      this.cursors.set(node, { epoch: reply.epoch, seq: write.seq });
      if (write.kind === 'plain') this.push({ kind: 'write', id: this.id(), bucket: this.filter.bucket, key: write.key, object: write.object, dot: write.dot });
      else this.takeDecided(write.key, write.version, write.value);
    }
    if (reply.next > (this.cursors.get(node)?.seq ?? 0)) {
      this.cursors.set(node, { epoch: reply.epoch, seq: reply.next });
      this.push({ kind: 'progress', id: this.id() });
    }
    return 'taken';
  }

  /**
   * Whether `node`'s log must wait at this decided write: an older version of its key is not
   * reported yet (or, for a key this watch has reported nothing of, may not be). The decider of
   * a version reports it before it commits it, and a round reports an uncommitted version it
   * builds on, so the older version is normally in some log already: the hold lasts until every
   * other node's log was read to its head by a poll sent after the hold began (or two polls of
   * it failed) and no other held log holds an older version of the key further on; by then the
   * older version has arrived, or it is reported missing (`compacted` for the key). A hold is
   * checked at most maxHoldChecks times, so holds waiting on each other cannot stall the watch.
   */
  private holdAt(node: string, write: Extract<LoggedWrite, { kind: 'consistent' }>, tail: readonly LoggedWrite[]): boolean {
    const last = this.versions.get(write.key);
    if (last !== undefined ? write.version <= last + 1 : write.version <= 1) {
      this.holds.delete(node);
      return false;
    }
    const hold = this.holds.get(node);
    if (hold?.seq !== write.seq) {
      this.holds.set(node, { seq: write.seq, since: new Map([...this.polls].filter(([other]) => other !== node)), tail, checks: 0 });
      return true;
    }
    this.holds.set(node, { ...hold, tail, checks: hold.checks + 1 });
    const unheard = [...hold.since].some(([other, since]) => {
      const now = this.polls.get(other)!;
      return this.polling.has(other) && now.headReached <= since.sent && now.failed - since.failed < 2;
    });
    const older = (candidate: LoggedWrite): boolean =>
      candidate.kind === 'consistent' && candidate.key === write.key && candidate.version > (last ?? 0) && candidate.version < write.version;
    const behindAnotherHold = [...this.holds].some(([other, otherHold]) => other !== node && otherHold.tail.some(older));
    if ((unheard || behindAnotherHold) && hold.checks < maxHoldChecks) return true;
    this.holds.delete(node);
    return false;
  }

  /** Reports a decided version of a consistent key once, in order: an older or repeated one is dropped, a skipped range is `compacted`. */
  private takeDecided(key: string, version: number, value: Uint8Array | null): void {
    const last = this.versions.get(key);
    if (last !== undefined && version <= last) return;
    const reported = (at: number): void => {
      this.versions.delete(key);
      this.versions.set(key, at);
      if (this.versions.size > maxWatchIdVersions) this.versions.delete(this.versions.keys().next().value as string);
    };
    if (last !== undefined && version > last + 1) {
      // Resuming from this item's id goes on with `version` itself.
      reported(version - 1);
      this.push({ kind: 'compacted', id: this.id(), nodes: [], key, missing: { from: last + 1, to: version - 1 } });
    }
    reported(version);
    this.push({ kind: 'decided', id: this.id(), bucket: this.filter.bucket, key, version, value });
  }

  /**
   * A departed node's log was read to its end (or `lost`: it no longer answers, so `compacted`
   * says its last writes may be missing). Its cursor leaves the id, so a later resume neither
   * reads it again nor reports it lost again: a node that left or was removed writes no more.
   */
  private settleDeparted(node: string, lost: boolean): void {
    this.cursors.delete(node);
    this.holds.delete(node);
    this.push(lost ? { kind: 'compacted', id: this.id(), nodes: [node] } : { kind: 'progress', id: this.id() });
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
    return encodeWatchId({ cursors: this.cursors, versions: this.versions });
  }

  /** Queues an item; a watcher maxQueuedEvents behind is cut off with `overflow` instead of queueing without bound. */
  private push(item: WatchItem): void {
    if (this.stopped) return;
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
