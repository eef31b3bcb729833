/**
 * Storage in memory through memory-level, for simulations and tests: the same sublevels and
 * the same code paths as LevelDB, without a disk. It also plays the disk's part in a crash: it
 * keeps apart what was synced from what was only written, and `crash()` answers a new storage
 * holding only what a power loss leaves of the disk.
 *
 * The durability rule is LevelDB's: every write is appended to one log, and a write with
 * `sync: true` fsyncs that log, which makes it and every write before it durable. So a crash
 * keeps the whole database as of the last synced write and loses every write after it. That
 * is the most LevelDB can lose (the operating system may have flushed some later writes on its
 * own); a plain process kill loses nothing in LevelDB, because the log writes already sit in
 * the operating system's page cache, so the crash simulated here is a machine's.
 */
import type { AbstractSnapshot } from 'abstract-level';
import { MemoryLevel } from 'memory-level';
import { KvError } from '../util/errors.js';
import { AbstractLevelStorage, type RootDatabase } from '../adapters/abstract-level-storage.js';

/** The engine methods of memory-level that the durable engine below wraps (abstract-level calls them with encoded keys). */
interface EngineMethods {
  _put(key: unknown, value: unknown, options: { sync?: boolean }): Promise<void>;
  _del(key: unknown, options: { sync?: boolean }): Promise<void>;
  _batch(operations: unknown[], options: { sync?: boolean }): Promise<void>;
  _clear(options: object): Promise<void>;
}

const engine = MemoryLevel.prototype as unknown as EngineMethods;

/** Entries copied per batch when a crashed disk is read back. */
const entriesPerCopy = 1024;

/** The recovered disk is written synced: what survived one crash survives the next. */
const recoveryWriteOptions: { keyEncoding: 'view'; valueEncoding: 'view'; sync: boolean } = { keyEncoding: 'view', valueEncoding: 'view', sync: true };

/** The error every call of a crashed node's storage answers. */
function crashedError(): KvError {
  return new KvError('KV_STORAGE', 'this simulated node crashed: its storage handle is dead; restart the node on the storage that crash() answered');
}

/**
 * memory-level with a record of durability. memory-level keeps its data in a persistent
 * (immutable) tree, so a snapshot taken at a synced write is the durable state at O(1) cost.
 * memory-level applies a write synchronously inside its engine call, so the snapshot taken
 * right after the call holds that write and nothing later.
 */
class DurableMemoryLevel extends MemoryLevel<string, string> {
  /** The database as of the last synced write; undefined while none happened (the durable state is empty). */
  durable: AbstractSnapshot | undefined;
  /** Writes applied since the last synced one: what a crash now would lose. */
  unsyncedWrites = 0;
  /**
   * Set by a crash: every later write refuses. Reads still answer the state at the crash (tests
   * look at what a dead node held); they cannot change anything, since the dead node's writes,
   * timers and messages all go nowhere.
   */
  crashed = false;
  /** A failure to close a superseded snapshot, reported by the next crash. */
  snapshotCloseFailure: unknown;

  async _put(key: unknown, value: unknown, options: { sync?: boolean }): Promise<void> {
    this.refuseIfCrashed();
    const applied = engine._put.call(this, key, value, options);
    this.recordWrite(options.sync === true);
    return applied;
  }

  async _del(key: unknown, options: { sync?: boolean }): Promise<void> {
    this.refuseIfCrashed();
    const applied = engine._del.call(this, key, options);
    this.recordWrite(options.sync === true);
    return applied;
  }

  async _batch(operations: unknown[], options: { sync?: boolean }): Promise<void> {
    this.refuseIfCrashed();
    const applied = engine._batch.call(this, operations, options);
    this.recordWrite(options.sync === true);
    return applied;
  }

  async _clear(options: object): Promise<void> {
    this.refuseIfCrashed();
    // A range delete has no sync option in the port: it becomes durable with the next synced write.
    this.unsyncedWrites += 1;
    return engine._clear.call(this, options);
  }

  private refuseIfCrashed(): void {
    if (this.crashed) throw crashedError();
  }

  private recordWrite(sync: boolean): void {
    if (!sync) {
      this.unsyncedWrites += 1;
      return;
    }
    const superseded = this.durable;
    this.durable = this.snapshot();
    this.unsyncedWrites = 0;
    superseded?.close().catch((error: unknown) => {
      this.snapshotCloseFailure = error;
    });
  }
}

/**
 * The storage port in memory; `stats()` reports engine 'memory', no levels and the stored
 * bytes. `crash()` simulates a power loss (see the file's comment for what survives).
 */
export class MemoryStorage extends AbstractLevelStorage {
  private readonly level: DurableMemoryLevel;

  constructor() {
    // Storing views keeps the engine's own order byte-wise, the order LevelDB gives.
    const level = new DurableMemoryLevel({ storeEncoding: 'view' });
    super(level as unknown as RootDatabase, 'memory');
    this.level = level;
  }

  /** Writes applied since the last synced write: what a crash now would lose. */
  get unsyncedWrites(): number {
    return this.level.unsyncedWrites;
  }

  /** True once `crash()` ran: every write refuses with KV_STORAGE. */
  get crashed(): boolean {
    return this.level.crashed;
  }

  /**
   * A crash. From now on this storage refuses every write, so the crashed process's work still
   * under way fails instead of landing on the disk later; the answer is a new, opened storage
   * to restart the node on. After a 'power-loss' it holds what was durable: everything up to
   * the last synced write. After a 'process' crash (kill -9) it holds every write applied, as
   * LevelDB's log writes survive in the operating system's page cache.
   */
  async crash(kind: 'power-loss' | 'process' = 'power-loss'): Promise<MemoryStorage> {
    const level = this.level;
    if (level.crashed) throw new KvError('KV_STORAGE', 'this storage already crashed; use the storage its crash() answered');
    if (level.status !== 'open') await this.open();
    // What survives is fixed at the instant of the crash, before anything else can run.
    if (kind === 'process') level.durable = level.snapshot();
    level.crashed = true;
    if (level.snapshotCloseFailure !== undefined) throw new KvError('KV_STORAGE', `a durable snapshot failed to close: ${String(level.snapshotCloseFailure)}`);
    const recovered = new MemoryStorage();
    await recovered.open();
    const durable = level.durable;
    if (durable !== undefined) {
      const iterator = level.iterator<Uint8Array, Uint8Array>({ keyEncoding: 'view', valueEncoding: 'view', snapshot: durable });
      try {
        for (;;) {
          const entries = await iterator.nextv(entriesPerCopy);
          if (entries.length === 0) break;
          await recovered.database.batch(
            entries.map(([key, value]) => ({ type: 'put' as const, key, value })),
            recoveryWriteOptions,
          );
        }
      } finally {
        await iterator.close();
      }
    }
    return recovered;
  }
}
