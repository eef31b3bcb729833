/**
 * The storage port on top of any `abstract-level` database. LevelDB (through `level`) and the
 * in-memory engine (memory-level) share this code, so the contract suite that runs against
 * both exercises one implementation of the key spaces and only the engine differs.
 */
import type { AbstractIteratorOptions, AbstractLevel, AbstractSublevel } from 'abstract-level';
import type { BatchOperation, KeyRange, KeySpace, SpaceBatchOperation, SpaceName, Storage, StorageStats, WriteOptions } from '../ports/storage.js';
import { KvError } from '../util/errors.js';

/** The formats a root database may store keys and values in. */
type RootFormat = string | Buffer | Uint8Array;

/** Any root database: level's Level (LevelDB) and MemoryLevel both fit. */
export type RootDatabase = AbstractLevel<RootFormat, string, string>;

/** A sublevel with byte keys and byte values. */
type ByteSublevel = AbstractSublevel<RootDatabase, RootFormat, Uint8Array, Uint8Array>;

/** The names of the spaces; they become the on-disk prefixes `!data!`, `!hints!`, `!meta!` and `!paxos!`. */
const spaceNames = ['data', 'hints', 'meta', 'paxos'] as const;

/** How many entries an iterator reads from the engine at once; larger batches cost memory, smaller ones cost round trips. */
const entriesPerRead = 256;

/** Turns an engine failure into an operating error that says what failed and what to check. */
export function storageError(operation: string, cause: unknown): KvError {
  if (cause instanceof KvError) return cause;
  const code = (cause as { code?: unknown } | null)?.code;
  const causeCode = (cause as { cause?: { code?: unknown } } | null)?.cause?.code;
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

/** An operation on the root database, its key already carrying its space's prefix. */
type RootOperation = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

/** An atomic write (one put, one del, or a cross-space batch) waiting to go to the engine with the others of its group. */
interface QueuedWrite {
  readonly operations: readonly RootOperation[];
  readonly sync: boolean;
  /** What the write was, for the error message of a failed group. */
  readonly what: string;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** Operations per group commit at most (one atomic write is never split), so one group never builds an unbounded batch. */
const maxWritesPerGroup = 2048;

/** The root database's write options for keys and values already in bytes. */
function rootWriteOptions(sync: boolean): { keyEncoding: 'view'; valueEncoding: 'view'; sync: boolean } {
  return { keyEncoding: 'view', valueEncoding: 'view', sync };
}

/** A key with a space's on-disk prefix in front: the key the root database stores. */
function prefixed(prefix: Uint8Array, key: Uint8Array): Uint8Array {
  const result = new Uint8Array(prefix.byteLength + key.byteLength);
  result.set(prefix, 0);
  result.set(key, prefix.byteLength);
  return result;
}

/**
 * Group commit for the whole database: single puts and dels of every space, and cross-space
 * batches, that arrive together (in one turn of the event loop, or while the previous group is
 * being written) go to the root database as one atomic batch with their keys already prefixed
 * (a sublevel batch would encode and prefix every key once more on its way to the root). Each
 * write still resolves only once its group is in LevelDB's log, and a group is synced when any
 * write in it asked for sync, so nothing is acknowledged earlier or less durably than asked;
 * groups are written one after the other in arrival order, and a write is never split between
 * groups, so an atomic write stays atomic.
 */
class GroupCommit {
  private readonly queue: QueuedWrite[] = [];
  private flushScheduled = false;
  private flushing = false;

  constructor(private readonly database: RootDatabase) {}

  enqueue(operations: readonly RootOperation[], sync: boolean, what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ operations, sync, what, resolve, reject });
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

  private takeGroup(): QueuedWrite[] {
    let count = 0;
    let taken = 0;
    while (taken < this.queue.length && (taken === 0 || count + this.queue[taken]!.operations.length <= maxWritesPerGroup)) {
      count += this.queue[taken]!.operations.length;
      taken += 1;
    }
    return this.queue.splice(0, taken);
  }

  private async flush(): Promise<void> {
    const group = this.takeGroup();
    if (group.length === 0) return;
    this.flushing = true;
    try {
      let sync = false;
      const operations: RootOperation[] = [];
      for (const write of group) {
        if (write.sync) sync = true;
        for (const operation of write.operations) operations.push(operation);
      }
      await this.database.batch(operations as never, rootWriteOptions(sync));
      for (const write of group) write.resolve();
    } catch (error) {
      const what = [...new Set(group.map((write) => write.what))].join(', ');
      const failure = storageError(`write in ${what}`, error);
      for (const write of group) write.reject(failure);
    } finally {
      this.flushing = false;
      if (this.queue.length > 0) this.scheduleFlush();
    }
  }
}

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
  private readonly reads: QueuedRead[] = [];
  private readsScheduled = false;
  /** The space's on-disk prefix (`!data!` and so on) as bytes. */
  readonly prefix: Uint8Array;

  constructor(
    readonly name: string,
    private readonly sublevel: ByteSublevel,
    private readonly writes: GroupCommit,
  ) {
    this.prefix = Uint8Array.from(sublevel.prefixKey(new Uint8Array(0), 'view', false));
  }

  /** The engine operation of one of this space's operations, on the root database. */
  rootOperation(operation: BatchOperation): RootOperation {
    return operation.type === 'put'
      ? { type: 'put', key: prefixed(this.prefix, operation.key), value: operation.value }
      : { type: 'del', key: prefixed(this.prefix, operation.key) };
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
    return this.writes.enqueue([{ type: 'put', key: prefixed(this.prefix, key), value }], options?.sync === true, this.name);
  }

  del(key: Uint8Array, options?: WriteOptions): Promise<void> {
    return this.writes.enqueue([{ type: 'del', key: prefixed(this.prefix, key) }], options?.sync === true, this.name);
  }

  batch(operations: readonly BatchOperation[], options?: WriteOptions): Promise<void> {
    // Fresh operation objects, because abstract-level's write hooks may rewrite the ones it is given.
    const engineOperations = operations.map((operation) =>
      operation.type === 'put' ? { type: 'put' as const, key: operation.key, value: operation.value } : { type: 'del' as const, key: operation.key },
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
  /** Acceptor state of consistent buckets' keys. */
  readonly paxos: KeySpace;
  private readonly spaces: Readonly<Record<SpaceName, SublevelKeySpace>>;
  private readonly writes: GroupCommit;
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
    const sublevels = spaceNames.map((name) => database.sublevel<Uint8Array, Uint8Array>(name, { keyEncoding: 'view', valueEncoding: 'view' }));
    const [data, hints, meta, paxos] = sublevels as [ByteSublevel, ByteSublevel, ByteSublevel, ByteSublevel];
    this.sublevels = sublevels;
    this.dataSublevel = data;
    this.writes = new GroupCommit(database);
    const spaces = {
      data: new SublevelKeySpace('data', data, this.writes),
      hints: new SublevelKeySpace('hints', hints, this.writes),
      meta: new SublevelKeySpace('meta', meta, this.writes),
      paxos: new SublevelKeySpace('paxos', paxos, this.writes),
    };
    this.spaces = spaces;
    this.data = spaces.data;
    this.hints = spaces.hints;
    this.meta = spaces.meta;
    this.paxos = spaces.paxos;
  }

  /** One atomic write across the spaces, group-committed with the other writes of its turn. */
  write(operations: readonly SpaceBatchOperation[], options?: WriteOptions): Promise<void> {
    if (operations.length === 0) return Promise.resolve();
    const what = [...new Set(operations.map((operation) => operation.space))].join('+');
    let rootOperations: RootOperation[];
    try {
      rootOperations = operations.map((operation) => this.spaces[operation.space].rootOperation(operation));
    } catch (error) {
      // A malformed operation (no key bytes, an unknown space) fails alone, before it can join a group.
      return Promise.reject(storageError(`write in ${what}`, error));
    }
    return this.writes.enqueue(rootOperations, options?.sync === true, what);
  }

  /** Opens the database and its spaces; after a close this reopens them. */
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
