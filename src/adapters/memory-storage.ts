/**
 * Storage in memory through memory-level, for simulations and tests: the same sublevels and
 * the same code paths as LevelDB, without a disk. A simulated crash keeps this object, which
 * plays the part of the disk that survives the process.
 */
import { MemoryLevel } from 'memory-level';
import { AbstractLevelStorage, type RootDatabase } from './abstract-level-storage.js';

/** The storage port in memory; `stats()` reports engine 'memory', no levels and the stored bytes. */
export class MemoryStorage extends AbstractLevelStorage {
  constructor() {
    // Storing views keeps the engine's own order byte-wise, the order LevelDB gives.
    super(new MemoryLevel<string, string>({ storeEncoding: 'view' }) as RootDatabase, 'memory');
  }
}
