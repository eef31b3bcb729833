/**
 * Installs a Debian package a test or the chaos harness needs (chromium for the dashboard, openssl
 * for TLS, iproute2 and iptables for network namespaces, faketime for the clock nemesis) when its
 * program is missing, as CI runs as root on a fresh machine. Returns a reason to skip when the
 * install is impossible here (not root, no apt-get), so the test can say why it did not run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Runs one apt-get command; throws as execFileSync does (with `stderr`) when it fails. */
export type AptRunner = (args: readonly string[], timeoutMs: number) => void;

const runAptGet: AptRunner = (args, timeoutMs) => {
  execFileSync('apt-get', [...args], { stdio: 'pipe', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: timeoutMs });
};

/** Blocks this thread for `ms` (the installers are synchronous: they run before anything starts). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** How often, and how far apart, a command that found apt's or dpkg's lock taken is tried again. */
const lockAttempts = 60;
const lockRetryMs = 5_000;

/**
 * `apt-get update`, then `apt-get install PACKAGE`; undefined when it worked, else why not. Other
 * processes (two harness runs, a test beside a run) may install at the same time: dpkg's lock is
 * waited for by apt itself (`DPkg::Lock::Timeout`), but `update`'s lock on the package lists is
 * not, and a second `update` fails at once on it; so a command that failed on a lock is tried
 * again, every 5 s for up to 5 minutes.
 */
export function aptInstall(packageName: string, run: AptRunner = runAptGet, sleep: (ms: number) => void = sleepSync): string | undefined {
  const lockWait = ['-o', 'DPkg::Lock::Timeout=300'];
  const commands: [readonly string[], number][] = [
    [[...lockWait, 'update'], 300_000],
    [[...lockWait, 'install', '-y', '--no-install-recommends', packageName], 600_000],
  ];
  for (const [args, timeoutMs] of commands) {
    for (let attempt = 1; ; attempt++) {
      try {
        run(args, timeoutMs);
        break;
      } catch (error) {
        const output = String((error as { stderr?: Buffer }).stderr ?? (error as Error).message);
        if (/lock/i.test(output) && attempt < lockAttempts) {
          sleep(lockRetryMs);
          continue;
        }
        return `installing ${packageName} failed (apt-get ${args.slice(lockWait.length).join(' ')}): ${output.slice(-500)}`;
      }
    }
  }
  return undefined;
}

/** Makes sure `program` exists, installing Debian package `packageName` when it does not; undefined when ready, else why not. */
export function ensureDebianPackage(program: string, packageName: string): string | undefined {
  if (existsSync(program)) return undefined;
  if (process.getuid?.() !== 0) return `${program} is missing and installing ${packageName} needs root: run apt-get install -y ${packageName}`;
  if (!existsSync('/usr/bin/apt-get')) return `${program} is missing and there is no apt-get to install ${packageName} with`;
  const failed = aptInstall(packageName);
  if (failed !== undefined) return failed;
  return existsSync(program) ? undefined : `${packageName} installed but ${program} is still missing`;
}
