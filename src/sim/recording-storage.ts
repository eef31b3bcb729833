/**
 * A storage wrapper for tests that records every write with its `sync` flag, so a test can ask
 * whether a key is durable: LevelDB keeps one write-ahead log for all sublevels, and a synced
 * write fsyncs it with every record appended before it, so a write is durable once it, or any
 * write called after it, was synced. Memory storage itself ignores `sync`; this makes it visible.
 * It also reports every key read to its read listeners, so a test can see which key ranges a
 * request touched.
 */
import { MemoryStorage } from './memory-storage.js';
import type { BatchOperation, KeyRange, KeySpace, SpaceBatchOperation, Storage, StorageStats, WriteOptions } from '../ports/storage.js';

/** The three key spaces. */
export type SpaceName = 'data' | 'hints' | 'meta' | 'paxos';

/** One recorded write. */
interface WriteEvent {
  readonly space: SpaceName;
  readonly type: 'put' | 'del';
  readonly key: string;
  readonly sync: boolean;
}

/** Called when a key is about to be deleted (before the delete reaches the engine). */
export type DeleteListener = (space: SpaceName, key: Buffer) => void;

/** Called for every key read: each get, each key of a getMany, each entry a range scan yields. */
export type ReadListener = (space: SpaceName, key: Buffer) => void;

function name(key: Uint8Array): string {
  return Buffer.from(key).toString('latin1');
}

/** Memory storage that records writes and their sync flags. */
export class RecordingStorage implements Storage {
  private readonly inner = new MemoryStorage();
  private readonly events: WriteEvent[] = [];
  /** Index of the newest synced write, -1 before any. */
  private lastSyncedIndex = -1;
  /** Index of the newest put per space and key (deleted keys are absent). */
  private readonly lastPut = new Map<string, number>();
  private readonly deleteListeners: DeleteListener[] = [];
  private readonly readListeners: ReadListener[] = [];
  readonly data: KeySpace;
  readonly hints: KeySpace;
  readonly meta: KeySpace;
  readonly paxos: KeySpace;

  constructor() {
    this.data = this.wrap('data', this.inner.data);
    this.hints = this.wrap('hints', this.inner.hints);
    this.meta = this.wrap('meta', this.inner.meta);
    this.paxos = this.wrap('paxos', this.inner.paxos);
  }

  /** Registers a listener of deletes. */
  onDelete(listener: DeleteListener): void {
    this.deleteListeners.push(listener);
  }

  /** Registers a listener of reads (to count which key ranges a test's requests touch). */
  onRead(listener: ReadListener): void {
    this.readListeners.push(listener);
  }

  private read(space: SpaceName, key: Uint8Array): void {
    for (const listener of this.readListeners) listener(space, Buffer.from(key));
  }

  /** A range scan that reports each entry it yields as a read. */
  private async *scan(space: SpaceName, inner: KeySpace, range?: KeyRange): AsyncIterable<[Uint8Array, Uint8Array]> {
    for await (const entry of inner.entries(range)) {
      this.read(space, entry[0]);
      yield entry;
    }
  }

  /** True when the key is stored and its newest put was synced, by itself or by a later synced write. */
  isDurable(space: SpaceName, key: Uint8Array): boolean {
    const index = this.lastPut.get(`${space}/${name(key)}`);
    return index !== undefined && index <= this.lastSyncedIndex;
  }

  /** Writes recorded so far. */
  get writes(): number {
    return this.events.length;
  }

  private record(space: SpaceName, type: 'put' | 'del', key: Uint8Array, sync: boolean): void {
    if (type === 'del') for (const listener of this.deleteListeners) listener(space, Buffer.from(key));
    const index = this.events.push({ space, type, key: name(key), sync }) - 1;
    const id = `${space}/${name(key)}`;
    if (type === 'put') this.lastPut.set(id, index);
    else this.lastPut.delete(id);
    if (sync) this.lastSyncedIndex = index;
  }

  private wrap(space: SpaceName, inner: KeySpace): KeySpace {
    return {
      get: (key) => {
        this.read(space, key);
        return inner.get(key);
      },
      getMany: (keys) => {
        for (const key of keys) this.read(space, key);
        return inner.getMany(keys);
      },
      put: (key: Uint8Array, value: Uint8Array, options?: WriteOptions) => {
        this.record(space, 'put', key, options?.sync === true);
        return inner.put(key, value, options);
      },
      del: (key: Uint8Array, options?: WriteOptions) => {
        this.record(space, 'del', key, options?.sync === true);
        return inner.del(key, options);
      },
      batch: (operations: readonly BatchOperation[], options?: WriteOptions) => {
        operations.forEach((operation, index) => this.record(space, operation.type, operation.key, options?.sync === true && index === operations.length - 1));
        return inner.batch(operations, options);
      },
      entries: (range?: KeyRange) => (this.readListeners.length === 0 ? inner.entries(range) : this.scan(space, inner, range)),
      clearRange: (range: KeyRange) => inner.clearRange(range),
    };
  }

  /** An atomic cross-space write: recorded as its operations in order, synced (when asked) with its last one. */
  write(operations: readonly SpaceBatchOperation[], options?: WriteOptions): Promise<void> {
    operations.forEach((operation, index) =>
      this.record(operation.space, operation.type, operation.key, options?.sync === true && index === operations.length - 1),
    );
    return this.inner.write(operations, options);
  }

  open(): Promise<void> {
    return this.inner.open();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  stats(): Promise<StorageStats> {
    return this.inner.stats();
  }

  compactRange(start?: Uint8Array, end?: Uint8Array): Promise<void> {
    return this.inner.compactRange(start, end);
  }
}
