/**
 * The storage port on top of any `abstract-level` database. LevelDB (classic-level) and the
 * in-memory engine (memory-level) share this code, so the contract suite that runs against
 * both exercises one implementation of the key spaces and only the engine differs.
 */
import type { AbstractIteratorOptions, AbstractLevel, AbstractSublevel } from 'abstract-level';
import type { BatchOperation, KeyRange, KeySpace, Storage, StorageStats, WriteOptions } from '../ports/storage.js';
import { KvError } from '../util/errors.js';

/** The formats a root database may store keys and values in. */
type RootFormat = string | Buffer | Uint8Array;

/** Any root database: ClassicLevel and MemoryLevel both fit. */
export type RootDatabase = AbstractLevel<RootFormat, string, string>;

/** A sublevel with byte keys and byte values. */
type ByteSublevel = AbstractSublevel<RootDatabase, RootFormat, Uint8Array, Uint8Array>;

/** The names of the three spaces; they become the on-disk prefixes `!data!`, `!hints!` and `!meta!`. */
const spaceNames = ['data', 'hints', 'meta'] as const;

/** How many entries an iterator reads from the engine at once; larger batches cost memory, smaller ones cost round trips. */
const entriesPerRead = 256;

/** Turns an engine failure into an operating error that says what failed and what to check. */
export function storageError(operation: string, cause: unknown): KvError {
  if (cause instanceof KvError) return cause;
  const code = (cause as { code?: unknown } | null)?.code;
  const causeCode = ((cause as { cause?: { code?: unknown } } | null)?.cause)?.code;
  const detail = cause instanceof Error ? cause.message : String(cause);
  // LevelDB holds a lock file; a second process on the same directory is the usual cause of a failed open.
  const hint =
    causeCode === 'LEVEL_LOCKED'
      ? 'another process holds this data directory; stop it or use a different --data directory'
      : code === 'LEVEL_DATABASE_NOT_OPEN'
        ? 'the storage is not open; open it before use and do not use it after close'
        : 'check that the data directory is readable, writable and has free disk space';
  return new KvError('KV_STORAGE', `storage ${operation} failed: ${detail}; ${hint}`, {
    details: { operation, ...(typeof code === 'string' ? { engineCode: code } : {}) },
    cause,
  });
}

/** Runs one engine call and reports its failure as a KV_STORAGE error. */
async function guarded<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw storageError(operation, error);
  }
}

/** The engine's write options: the encodings are the sublevel's own, restated so that `sync` travels with them. */
function writeOptionsFor(options: WriteOptions | undefined): { keyEncoding: 'view'; valueEncoding: 'view'; sync: boolean } {
  return { keyEncoding: 'view', valueEncoding: 'view', sync: options?.sync === true };
}

/** The engine's range options; absent bounds are left out because abstract-level would try to encode `undefined`. */
function rangeOptionsFor(range: KeyRange): AbstractIteratorOptions<Uint8Array, Uint8Array> {
  const options: AbstractIteratorOptions<Uint8Array, Uint8Array> = {};
  if (range.gte !== undefined) options.gte = range.gte;
  if (range.lt !== undefined) options.lt = range.lt;
  if (range.limit !== undefined) options.limit = range.limit;
  return options;
}

/** A single put or del waiting to go to the engine with the others of its group. */
interface QueuedWrite {
  readonly operation: { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };
  readonly sync: boolean;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** Writes per group commit at most, so one group never builds an unbounded batch. */
const maxWritesPerGroup = 2048;

/** A single get waiting to go to the engine with the others of its turn. */
interface QueuedRead {
  readonly key: Uint8Array;
  readonly resolve: (value: Uint8Array | undefined) => void;
  readonly reject: (error: unknown) => void;
}

/** Reads per grouped getMany at most. */
const maxReadsPerGroup = 1024;

/** One key space over one sublevel. */
class SublevelKeySpace implements KeySpace {
  private readonly queue: QueuedWrite[] = [];
  private flushScheduled = false;
  private flushing = false;
  private readonly reads: QueuedRead[] = [];
  private readsScheduled = false;

  constructor(
    private readonly name: string,
    private readonly sublevel: ByteSublevel,
  ) {}

  /**
   * Group commit: single puts and dels that arrive together (in one turn of the event loop, or
   * while the previous group is being written) go to the engine as one atomic batch. Each write
   * still resolves only once its group is in LevelDB's log, and a group is synced when any write
   * in it asked for sync, so nothing is acknowledged earlier or less durably than asked; the
   * engine sees one call and one log append instead of many.
   */
  private enqueue(operation: QueuedWrite['operation'], options: WriteOptions | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ operation, sync: options?.sync === true, resolve, reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.flushing) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const group = this.queue.splice(0, maxWritesPerGroup);
    if (group.length === 0) return;
    this.flushing = true;
    try {
      const sync = group.some((write) => write.sync);
      await this.sublevel.batch(
        group.map((write) => ({ ...write.operation })),
        writeOptionsFor({ sync }),
      );
      for (const write of group) write.resolve();
    } catch (error) {
      const failure = storageError(`write in ${this.name}`, error);
      for (const write of group) write.reject(failure);
    } finally {
      this.flushing = false;
      if (this.queue.length > 0) this.scheduleFlush();
    }
  }

  /**
   * Gets that arrive in the same turn of the event loop go to the engine as one getMany: one
   * trip through libuv's thread pool instead of one per key, which is most of what a single
   * LevelDB read costs the main thread.
   */
  get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return new Promise<Uint8Array | undefined>((resolve, reject) => {
      this.reads.push({ key, resolve, reject });
      if (this.readsScheduled) return;
      this.readsScheduled = true;
      setImmediate(() => {
        this.readsScheduled = false;
        void this.flushReads();
      });
    });
  }

  private async flushReads(): Promise<void> {
    while (this.reads.length > 0) {
      const group = this.reads.splice(0, maxReadsPerGroup);
      try {
        const values = await this.sublevel.getMany(group.map((read) => read.key));
        group.forEach((read, index) => read.resolve(values[index]));
      } catch (error) {
        const failure = storageError(`get in ${this.name}`, error);
        for (const read of group) read.reject(failure);
      }
    }
  }

  getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    return guarded(`getMany in ${this.name}`, () => this.sublevel.getMany([...keys]));
  }

  put(key: Uint8Array, value: Uint8Array, options?: WriteOptions): Promise<void> {
    return this.enqueue({ type: 'put', key, value }, options);
  }

  del(key: Uint8Array, options?: WriteOptions): Promise<void> {
    return this.enqueue({ type: 'del', key }, options);
  }

  batch(operations: readonly BatchOperation[], options?: WriteOptions): Promise<void> {
    // Fresh operation objects, because abstract-level's write hooks may rewrite the ones it is given.
    const engineOperations = operations.map((operation) =>
      operation.type === 'put'
        ? { type: 'put' as const, key: operation.key, value: operation.value }
        : { type: 'del' as const, key: operation.key },
    );
    return guarded(`batch in ${this.name}`, () => this.sublevel.batch(engineOperations, writeOptionsFor(options)));
  }

  async *entries(range: KeyRange = {}): AsyncIterable<[Uint8Array, Uint8Array]> {
    const iterator = this.sublevel.iterator(rangeOptionsFor(range));
    try {
      for (;;) {
        // Reading a batch at a time keeps range scans (handoff, Merkle rebuilds) from paying one native call per key.
        const batch = await guarded(`scan of ${this.name}`, () => iterator.nextv(entriesPerRead));
        if (batch.length === 0) return;
        for (const [key, value] of batch) yield [key, value];
      }
    } finally {
      await guarded(`closing a scan of ${this.name}`, () => iterator.close());
    }
  }

  clearRange(range: KeyRange): Promise<void> {
    // Both engines delete a range in bounded internal batches, so a large partition does not build one huge write.
    return guarded(`clearRange in ${this.name}`, () => this.sublevel.clear(rangeOptionsFor(range)));
  }
}

/** The storage port over an abstract-level database with sublevels `data`, `hints` and `meta`. */
export class AbstractLevelStorage implements Storage {
  /** The node's versioned objects, keyed by ring position, bucket and key. */
  readonly data: KeySpace;
  /** Hints held for unreachable replicas. */
  readonly hints: KeySpace;
  /** The node's identity, ring and other small records. */
  readonly meta: KeySpace;
  /** The sublevel behind `data`, which subclasses need for its on-disk prefix. */
  protected readonly dataSublevel: ByteSublevel;
  /** Manual compactions completed since the storage was opened. */
  protected manualCompactions = 0;
  private readonly sublevels: readonly ByteSublevel[];

  constructor(
    /** The root database; its own keys are the sublevels' prefixed keys. */
    protected readonly database: RootDatabase,
    /** The engine name reported by `stats()`. */
    private readonly engineName: string,
  ) {
    const sublevels = spaceNames.map((name) =>
      database.sublevel<Uint8Array, Uint8Array>(name, { keyEncoding: 'view', valueEncoding: 'view' }),
    );
    const [data, hints, meta] = sublevels as [ByteSublevel, ByteSublevel, ByteSublevel];
    this.sublevels = sublevels;
    this.dataSublevel = data;
    this.data = new SublevelKeySpace('data', data);
    this.hints = new SublevelKeySpace('hints', hints);
    this.meta = new SublevelKeySpace('meta', meta);
  }

  /** Opens the database and its three spaces; after a close this reopens them. */
  async open(): Promise<void> {
    await guarded('open', () => this.database.open());
    // A closed parent closes its sublevels and reopening the parent leaves them closed, so each is opened here.
    await guarded('open of the key spaces', () => Promise.all(this.sublevels.map((sublevel) => sublevel.open())));
    this.manualCompactions = 0;
  }

  /** Closes the database; pending writes finish first. */
  async close(): Promise<void> {
    await guarded('close', () => this.database.close());
  }

  /** Generic figures: no LSM levels, and the byte size is the sum of every stored key and value. */
  async stats(): Promise<StorageStats> {
    return {
      engine: this.engineName,
      levels: [],
      compactions: this.manualCompactions,
      approximateBytes: await this.storedBytes(),
    };
  }

  /** Engines without compaction have nothing to do; the call is still counted so that callers can see it ran. */
  async compactRange(_start?: Uint8Array, _end?: Uint8Array): Promise<void> {
    this.manualCompactions += 1;
  }

  /** The sum of key and value lengths over the whole database, read with a full scan. */
  protected async storedBytes(): Promise<number> {
    let bytes = 0;
    const iterator = this.database.iterator<Uint8Array, Uint8Array>({ keyEncoding: 'view', valueEncoding: 'view' });
    try {
      for (;;) {
        const batch = await guarded('size scan', () => iterator.nextv(entriesPerRead));
        if (batch.length === 0) return bytes;
        for (const [key, value] of batch) bytes += key.byteLength + value.byteLength;
      }
    } finally {
      await guarded('closing a size scan', () => iterator.close());
    }
  }
}
