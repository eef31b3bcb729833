/**
 * Installs a Debian package a test or the chaos harness needs (chromium for the dashboard, openssl
 * for TLS, iproute2 and iptables for network namespaces) when its program is missing, as CI runs
 * as root on a fresh machine. Returns a reason to skip when the
 * install is impossible here (not root, no apt-get), so the test can say why it did not run.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Makes sure `program` exists, installing Debian package `packageName` when it does not; undefined when ready, else why not. */
export function ensureDebianPackage(program: string, packageName: string): string | undefined {
  if (existsSync(program)) return undefined;
  if (process.getuid?.() !== 0) return `${program} is missing and installing ${packageName} needs root: run apt-get install -y ${packageName}`;
  if (!existsSync('/usr/bin/apt-get')) return `${program} is missing and there is no apt-get to install ${packageName} with`;
  const environment = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // Another test may be installing at the same time: wait for dpkg's lock instead of failing on it.
  const lockWait = ['-o', 'DPkg::Lock::Timeout=300'];
  try {
    execFileSync('apt-get', [...lockWait, 'update'], { stdio: 'pipe', env: environment, timeout: 300_000 });
    execFileSync('apt-get', [...lockWait, 'install', '-y', '--no-install-recommends', packageName], { stdio: 'pipe', env: environment, timeout: 600_000 });
  } catch (error) {
    const output = String((error as { stderr?: Buffer }).stderr ?? (error as Error).message).slice(-500);
    return `installing ${packageName} failed: ${output}`;
  }
  return existsSync(program) ? undefined : `${packageName} installed but ${program} is still missing`;
}
