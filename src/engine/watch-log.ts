import type { LoggedWrite, WatchPollReply, WatchPollRequest } from '../core/wire/messages.js';
import type { Dot } from '../core/versioning/versioned-object.js';
import { decodeObject } from '../core/versioning/object-codec.js';
import { filterMatches } from '../core/watch/watch-cursor.js';
import type { Clock, TimerHandle } from '../ports/clock.js';
import type { Random } from '../ports/random.js';
import { KvError } from '../util/errors.js';

/** The bounds of a node's log of recent writes (config `watch`). */
export interface WatchLogLimits {
  /** Writes kept (watch.logEvents). */
  readonly logEvents: number;
  /** About how many bytes of objects are kept (watch.logBytes). */
  readonly logBytes: number;
}

/**
 * Where watch events come from: each write a node applies as the issuer of its version. The
 * replica feeds it for plain buckets (Replica.onCoordinatedWrite); for a consistent bucket the
 * proposer whose round decided a state feeds it (ConsistentCoordinator's onDecided), before it
 * sends the commit (docs/CONSENSUS.md, "Watches"), so watches follow both.
 */
export interface WatchEventSink {
  /** Records one write: the key, the object it left on this node (encoded, as stored) and the dot it created. */
  append(bucket: string, key: string, objectBytes: Uint8Array, dot: Dot): void;
  /** Records one decided state of a consistent key: its version and value (null: deleted). */
  appendDecided(bucket: string, key: string, version: number, value: Uint8Array | null): void;
}

/**
 * A kept write. Its object (or decided value) is kept as one latin1 string copy of its encoded
 * bytes, decoded again when a poll reads it: a write's objects and values are small Buffers cut
 * from Node's shared 64 KiB pool slabs (or slices of a whole peer frame), and a kept slice keeps
 * all of it alive; keeping the decoded objects, a log held 4.7 times its byte bound
 * (test/unit/watch-log-memory.test.ts; the object cache had the same cause, src/engine/object-cache.ts).
 */
type Entry =
  | {
      readonly seq: number;
      readonly bucket: string;
      readonly key: string;
      readonly kind: 'plain';
      readonly object: string;
      readonly dot: Dot;
      readonly bytes: number;
    }
  | {
      readonly seq: number;
      readonly bucket: string;
      readonly key: string;
      readonly kind: 'consistent';
      readonly version: number;
      readonly value: string | null;
      readonly bytes: number;
    };

/** What an entry is charged beyond its object's bytes and its key's: the entry, its strings' headers and its dot, as measured (test/unit/watch-log-memory.test.ts). */
const entryOverheadBytes = 224;

/** A copy of bytes the log can keep: a one-byte string, holding nothing else alive. */
function keptCopy(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/**
 * A node's log of the writes it issued, newest last, each with a sequence number, bounded by
 * count and bytes (etcd's watchable store keeps its history the same way, until compaction).
 * Watching nodes read it with `watch-poll` long polls from a cursor (epoch, seq): the epoch is
 * drawn at each start, so a cursor of an earlier run, or one older than the oldest write kept,
 * is answered with `gap` and the watcher hears `compacted` (read again) instead of missing
 * writes silently. The log is in memory only: a restart is a gap.
 *
 * It keeps nothing until the first poll arrives, so a cluster without watches pays nothing
 * for it on the write path; a watch begins with a poll of every node at the head of its log.
 * Writes before that still take their sequence numbers, so a watch that reads the log from its
 * start (a node that joined, not named in a resumed id) hears `gap` for them, never silence.
 */
export class WatchLog implements WatchEventSink {
  readonly epoch: string;
  /** The kept writes from `start` on; the slots before it are dropped writes, cleared so they hold nothing. */
  private readonly entries: (Entry | undefined)[] = [];
  /** Index of the oldest kept entry in `entries` (dropped ones are spliced out in batches). */
  private start = 0;
  private bytes = 0;
  /** The sequence number the next write gets; the head of the log is nextSeq - 1. */
  private nextSeq = 1;
  private active = false;
  private closed = false;
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly clock: Clock,
    random: Random,
    private readonly limits: () => WatchLogLimits,
  ) {
    this.epoch = Array.from({ length: 4 }, () =>
      Math.floor(random.next() * 0x10000)
        .toString(16)
        .padStart(4, '0'),
    ).join('');
  }

  /** Writes kept now (for /status and tests). */
  get size(): number {
    return this.entries.length - this.start;
  }

  append(bucket: string, key: string, objectBytes: Uint8Array, dot: Dot): void {
    const seq = this.nextSeq++;
    if (!this.active) return;
    this.push({
      seq,
      bucket,
      key,
      kind: 'plain',
      object: keptCopy(objectBytes),
      dot,
      bytes: objectBytes.byteLength + key.length + bucket.length + entryOverheadBytes,
    });
  }

  appendDecided(bucket: string, key: string, version: number, value: Uint8Array | null): void {
    const seq = this.nextSeq++;
    if (!this.active) return;
    this.push({
      seq,
      bucket,
      key,
      kind: 'consistent',
      version,
      value: value === null ? null : keptCopy(value),
      bytes: (value?.length ?? 0) + key.length + bucket.length + entryOverheadBytes,
    });
  }

  private push(entry: Entry): void {
    this.entries.push(entry);
    this.bytes += entry.bytes;
    const { logEvents, logBytes } = this.limits();
    while (this.size > logEvents || (this.bytes > logBytes && this.size > 1)) this.dropOldest();
    this.wake();
  }

  /**
   * The writes after the request's cursor that its filter follows, at most maxWrites of them;
   * when there are none yet, waits up to waitMs for one (a long poll) and answers empty after it.
   */
  async poll(request: WatchPollRequest): Promise<WatchPollReply> {
    // A stopping node answers no polls: an answer at once would send its watchers round in a tight loop.
    if (this.closed) throw new KvError('KV_NOT_READY', 'this node is stopping; its watchers ask its peers meanwhile and this node again once it is back');
    this.active = true;
    const head = this.nextSeq - 1;
    if (request.cursor === null) return this.reply(head, false, []);
    const { cursor } = request;
    const oldest = this.size === 0 ? this.nextSeq : this.entries[this.start]!.seq;
    // A cursor of another run of this node, or one the log has dropped writes after, or one from the future.
    if (cursor.epoch !== this.epoch || cursor.seq + 1 < oldest || cursor.seq > head) return this.reply(head, true, []);
    const deadlineMs = this.clock.nowMs() + request.waitMs;
    let after = cursor.seq;
    for (;;) {
      const { writes, scannedTo } = this.scan(after, request);
      after = scannedTo;
      if (writes.length > 0 || this.closed) return this.reply(after, false, writes);
      const leftMs = deadlineMs - this.clock.nowMs();
      // Answers empty once the wait is over: by the deadline, or by the timer (a drifting clock may fire it a little early).
      if (leftMs <= 0 || !(await this.nextAppend(leftMs))) return this.reply(after, false, []);
      // Writes may have been dropped while it waited: the cursor must still be in the log.
      const oldestNow = this.entries[this.start]?.seq ?? this.nextSeq;
      if (after + 1 < oldestNow) return this.reply(this.nextSeq - 1, true, []);
    }
  }

  /** Wakes every waiting poll (they answer what they have); the node is stopping. */
  close(): void {
    this.closed = true;
    this.wake();
  }

  private reply(next: number, gap: boolean, writes: readonly LoggedWrite[]): WatchPollReply {
    return { type: 'watch-poll-reply', epoch: this.epoch, next, gap, writes };
  }

  /** The matching writes after `after`, up to maxWrites, and the last sequence number looked at. */
  private scan(after: number, request: WatchPollRequest): { writes: LoggedWrite[]; scannedTo: number } {
    const writes: LoggedWrite[] = [];
    const oldest = this.entries[this.start]?.seq ?? this.nextSeq;
    let scannedTo = after;
    for (let index = this.start + Math.max(0, after + 1 - oldest); index < this.entries.length; index++) {
      const entry = this.entries[index]!;
      if (filterMatches(request.filter, entry.bucket, entry.key)) {
        writes.push(
          entry.kind === 'plain'
            ? { seq: entry.seq, key: entry.key, kind: 'plain', object: decodeObject(Buffer.from(entry.object, 'latin1')), dot: entry.dot }
            : {
                seq: entry.seq,
                key: entry.key,
                kind: 'consistent',
                version: entry.version,
                value: entry.value === null ? null : Buffer.from(entry.value, 'latin1'),
              },
        );
      }
      scannedTo = entry.seq;
      if (writes.length >= request.maxWrites) break;
    }
    return { writes, scannedTo };
  }

  private dropOldest(): void {
    const entry = this.entries[this.start]!;
    this.bytes -= entry.bytes;
    // Cleared now, not at the next splice: until then a dropped write would stay as alive as a kept one.
    this.entries[this.start] = undefined;
    this.start += 1;
    // Splice dropped entries out once they are half the array, so dropping stays O(1) amortised.
    if (this.start > 1024 && this.start * 2 > this.entries.length) {
      this.entries.splice(0, this.start);
      this.start = 0;
    }
  }

  private wake(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }

  /** Resolves true at the next append (or close), false after `timeoutMs` without one. */
  private async nextAppend(timeoutMs: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let timer: TimerHandle | undefined = undefined;
      const wake = (): void => {
        timer?.cancel();
        this.waiters.delete(wake);
        resolve(true);
      };
      this.waiters.add(wake);
      timer = this.clock.setTimer(timeoutMs, () => {
        this.waiters.delete(wake);
        resolve(false);
      });
    });
  }
}
