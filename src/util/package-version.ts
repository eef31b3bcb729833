import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * ringkv's version, from its package.json, found by walking up from this file (which runs from
 * src/ under vitest and from dist/src/ once built), so `ringkv --version` and /openapi.json say
 * the version of the package that is running.
 */
export function packageVersion(): string {
  let folder = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(folder, 'package.json');
    if (existsSync(file)) {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (parsed.name === 'ringkv' && typeof parsed.version === 'string') return parsed.version;
    }
    const parent = dirname(folder);
    if (parent === folder) throw new Error(`no package.json of ringkv above ${fileURLToPath(import.meta.url)}; reinstall ringkv`);
    folder = parent;
  }
}
