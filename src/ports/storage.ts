/**
 * The storage port: one ordered key-value database per node with three separate spaces
 * (data, hints, metadata, and the Paxos acceptor state of consistent buckets), as LevelDB sublevels. Keys and values are bytes.
 */

/** Options of a write. */
export interface WriteOptions {
  /** Fsync the write-ahead log before answering (LevelDB's `sync`). */
  readonly sync?: boolean;
}

/** One operation of an atomic batch. */
export type BatchOperation =
  { readonly type: 'put'; readonly key: Uint8Array; readonly value: Uint8Array } | { readonly type: 'del'; readonly key: Uint8Array };

/** The three spaces of a node's database. */
export type SpaceName = 'data' | 'hints' | 'meta' | 'paxos';

/** One operation of an atomic batch that spans the spaces. */
export type SpaceBatchOperation = BatchOperation & { readonly space: SpaceName };

/** A key range; bounds are byte-wise (lexicographic) comparisons. */
export interface KeyRange {
  readonly gte?: Uint8Array;
  readonly lt?: Uint8Array;
  readonly limit?: number;
}

/** One ordered key space (a sublevel). */
export interface KeySpace {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]>;
  put(key: Uint8Array, value: Uint8Array, options?: WriteOptions): Promise<void>;
  del(key: Uint8Array, options?: WriteOptions): Promise<void>;
  batch(operations: readonly BatchOperation[], options?: WriteOptions): Promise<void>;
  /** Entries in key order within `range`. */
  entries(range?: KeyRange): AsyncIterable<[Uint8Array, Uint8Array]>;
  /** Deletes every key in the range (in batches). */
  clearRange(range: KeyRange): Promise<void>;
}

/** Files and bytes of one LSM level. */
export interface LevelFigures {
  readonly level: number;
  readonly files: number;
  readonly bytes: number;
}

/** The engine's own figures, for /status and /metrics. */
export interface StorageStats {
  readonly engine: string;
  readonly levels: readonly LevelFigures[];
  /** Compactions that ran since the database was opened (LevelDB's counters where available). */
  readonly compactions: number;
  readonly approximateBytes: number;
  /** LevelDB's own 'leveldb.stats' text, when the engine has one. */
  readonly rawStats?: string;
}

/** A node's whole database. */
export interface Storage {
  readonly data: KeySpace;
  readonly hints: KeySpace;
  readonly meta: KeySpace;
  /** Per-key acceptor state of consistent buckets (src/engine/acceptor-store.ts), written synced. */
  readonly paxos: KeySpace;
  /**
   * Applies operations of any of the spaces as one atomic write, in order (LevelDB has one
   * write-ahead log for all of them). It may share one engine batch with other writes that arrive
   * at the same time, and resolves only once that batch is written, synced when `sync` asks.
   */
  write(operations: readonly SpaceBatchOperation[], options?: WriteOptions): Promise<void>;
  open(): Promise<void>;
  close(): Promise<void>;
  stats(): Promise<StorageStats>;
  /** Compacts the data space between two keys (the whole space when omitted). */
  compactRange(start?: Uint8Array, end?: Uint8Array): Promise<void>;
}
