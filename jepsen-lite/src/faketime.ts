/**
 * libfaketime for the clock nemesis: Debian's `faketime` package ships it. The harness installs
 * the package itself when it runs as root on a machine without it (as the repository's tests
 * install what they need, src/debian-packages.ts); otherwise it says why the clock
 * nemesis cannot run.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { aptInstall } from './debian-packages.js';

/** The Debian package that ships libfaketime. */
export const faketimePackage = 'faketime';

/** The multi-threaded variant, which a Node process (libuv's thread pool) needs. */
const libraryName = 'libfaketimeMT.so.1';

/** Where Debian puts the library: /usr/lib/<multiarch triplet>/faketime/, or /usr/lib/faketime/. */
export function findFaketimeLibrary(libRoot = '/usr/lib'): string | undefined {
  const candidates = [join(libRoot, 'faketime', libraryName)];
  try {
    for (const entry of readdirSync(libRoot)) if (entry.endsWith('-linux-gnu')) candidates.push(join(libRoot, entry, 'faketime', libraryName));
  } catch {
    return undefined;
  }
  return candidates.find((path) => existsSync(path));
}

/** The library's path once it is there (installing `faketime` as root if need be), or why the clock nemesis cannot run. */
export function ensureFaketime(say: (line: string) => void): { readonly library: string } | { readonly reason: string } {
  const found = findFaketimeLibrary();
  if (found !== undefined) return { library: found };
  if (process.getuid?.() !== 0)
    return {
      reason: `libfaketime is missing and installing Debian's ${faketimePackage} package needs root: run apt-get install -y ${faketimePackage}, or run the harness as root`,
    };
  if (!existsSync('/usr/bin/apt-get')) return { reason: `libfaketime is missing and there is no apt-get to install Debian's ${faketimePackage} package with` };
  say(`installing Debian's ${faketimePackage} package for the clock nemesis`);
  const failed = aptInstall(faketimePackage);
  if (failed !== undefined) return { reason: failed };
  const installed = findFaketimeLibrary();
  return installed === undefined ? { reason: `${faketimePackage} installed but ${libraryName} is not under /usr/lib` } : { library: installed };
}
