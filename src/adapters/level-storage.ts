/**
 * The real storage: one LevelDB per node through the `level` package (on Node its `Level` is
 * classic-level's LevelDB binding), with the data, hints and meta spaces as sublevels. This file
 * adds what only LevelDB has: tuning options, per-level figures and manual compaction.
 */
import { Level } from 'level';
import type { LevelFigures, StorageStats } from '../ports/storage.js';
import { assert } from '../util/assert.js';
import { AbstractLevelStorage, storageError } from './abstract-level-storage.js';

/** Where the database lives and how LevelDB is tuned (the config's `storage` section). */
export interface LevelStorageOptions {
  /** The LevelDB directory. */
  readonly location: string;
  /** Memtable size: writes are buffered up to this size before they become a level-0 table. */
  readonly writeBufferSizeBytes: number;
  /** LRU cache of uncompressed blocks. */
  readonly blockCacheSizeBytes: number;
  /** Table files are cut at about this size. */
  readonly maxFileSizeBytes: number;
  /** Snappy compression of blocks. */
  readonly compression: boolean;
}

const bytesPerMegabyte = 1_048_576;

/** A row of the 'leveldb.stats' table: `level files size(MB) time(sec) read(MB) write(MB)`. */
const statsRowPattern = /^\s*(\d+)\s+(\d+)\s+(\d+(?:\.\d+)?)\s+(\d+(?:\.\d+)?)\s+(\d+(?:\.\d+)?)\s+(\d+(?:\.\d+)?)\s*$/;
/** A level header of the 'leveldb.sstables' listing. */
const sstableLevelPattern = /^--- level (\d+) ---$/;
/** A table of the 'leveldb.sstables' listing: ` fileNumber:fileSizeBytes[smallest .. largest]`. */
const sstableFilePattern = /^ (\d+):(\d+)\[/;

/**
 * The levels LevelDB reports in its 'leveldb.stats' table (those holding files or having done
 * compaction work). The table prints sizes rounded to whole megabytes, so a small level would
 * read as 0 bytes; the exact table-file sizes come from the 'leveldb.sstables' listing, and the
 * rounded figure is kept only for a level the listing does not show.
 */
export function parseLevelFigures(statsText: string, sstablesText: string): LevelFigures[] {
  const exactBytes = new Map<number, number>();
  let level = -1;
  for (const line of sstablesText.split('\n')) {
    const header = sstableLevelPattern.exec(line);
    if (header !== null) {
      level = Number(header[1]);
      exactBytes.set(level, 0);
      continue;
    }
    const file = sstableFilePattern.exec(line);
    if (file !== null && level >= 0) exactBytes.set(level, (exactBytes.get(level) ?? 0) + Number(file[2]));
  }
  const figures: LevelFigures[] = [];
  for (const line of statsText.split('\n')) {
    const row = statsRowPattern.exec(line);
    if (row === null) continue;
    const rowLevel = Number(row[1]);
    figures.push({
      level: rowLevel,
      files: Number(row[2]),
      bytes: exactBytes.get(rowLevel) ?? Math.round(Number(row[3]) * bytesPerMegabyte),
    });
  }
  return figures;
}

/**
 * What LevelDB offers beyond abstract-level. `level` types its database for Node and browsers
 * alike, so these LevelDB-only methods of the Node binding are named here, and the constructor
 * checks that the database it opened has them.
 */
interface LevelDbMethods {
  /** A LevelDB property such as 'leveldb.stats', as LevelDB formats it. */
  getProperty(property: string): string;
  /** Compacts the keys from `start` (inclusive) to `end` (exclusive), in the given key encoding. */
  compactRange(start: Uint8Array, end: Uint8Array, options: { keyEncoding: 'view' }): Promise<void>;
}

/** Whether `database` is LevelDB's Node binding (the only engine `level` uses on Node). */
function hasLevelDbMethods(database: object): database is LevelDbMethods {
  const methods = database as Partial<Record<keyof LevelDbMethods, unknown>>;
  return typeof methods.getProperty === 'function' && typeof methods.compactRange === 'function';
}

/** The smallest byte string greater than every string that starts with `prefix` (the prefix with its last byte raised). */
function prefixUpperBound(prefix: Uint8Array): Uint8Array {
  const bound = Uint8Array.from(prefix);
  const last = bound.length - 1;
  // Sublevel prefixes end with the '!' separator (0x21), so raising the last byte cannot overflow.
  assert(last >= 0 && bound[last]! < 0xff, 'a sublevel prefix ends with a separator byte below 0xff');
  bound[last] = bound[last]! + 1;
  return bound;
}

/** The storage port on LevelDB. */
export class LevelStorage extends AbstractLevelStorage {
  private readonly level: LevelDbMethods;

  constructor(options: LevelStorageOptions) {
    const level = new Level<string, string>(options.location, {
      writeBufferSize: options.writeBufferSizeBytes,
      cacheSize: options.blockCacheSizeBytes,
      maxFileSize: options.maxFileSizeBytes,
      compression: options.compression,
    });
    assert(hasLevelDbMethods(level), "the level package opened LevelDB's Node binding (classic-level), which has getProperty and compactRange");
    super(level, 'leveldb');
    this.level = level;
  }

  /**
   * LevelDB's own figures. `levels` and `approximateBytes` count table files only, so writes
   * still in the memtable show up once it is flushed. LevelDB keeps no count of background
   * compactions (its table has only cumulative time and megabytes per level, reset on open and
   * rounded to whole units), so `compactions` is the number of manual compactions completed
   * since open; the background work is visible in `rawStats`.
   */
  override async stats(): Promise<StorageStats> {
    let statsText: string;
    let sstablesText: string;
    try {
      statsText = this.level.getProperty('leveldb.stats');
      sstablesText = this.level.getProperty('leveldb.sstables');
    } catch (error) {
      throw storageError('stats', error);
    }
    const levels = parseLevelFigures(statsText, sstablesText);
    return {
      engine: 'leveldb',
      levels,
      compactions: this.manualCompactions,
      approximateBytes: levels.reduce((sum, figures) => sum + figures.bytes, 0),
      rawStats: statsText,
    };
  }

  /**
   * Compacts the data space between `start` (inclusive) and `end` (exclusive), or all of it.
   * The keys are prefixed with the data sublevel's `!data!` first, because on disk the
   * spaces share one key space and the unprefixed bounds would name the wrong bytes.
   */
  override async compactRange(start?: Uint8Array, end?: Uint8Array): Promise<void> {
    const prefix = this.dataSublevel.prefixKey(new Uint8Array(0), 'view', false);
    const from = start === undefined ? prefix : this.dataSublevel.prefixKey(start, 'view', false);
    const to = end === undefined ? prefixUpperBound(prefix) : this.dataSublevel.prefixKey(end, 'view', false);
    try {
      await this.level.compactRange(from, to, { keyEncoding: 'view' });
    } catch (error) {
      throw storageError('compactRange', error);
    }
    this.manualCompactions += 1;
  }
}
