import { readFileSync } from 'node:fs';
import { KvError } from './errors.js';

/** Reads a file a setting names; a missing or unreadable one is a KV_BAD_CONFIG naming the setting. */
export function readSettingFile(path: string, setting: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new KvError('KV_BAD_CONFIG', `${setting} names ${path}, which cannot be read: ${(error as Error).message}`);
  }
}
