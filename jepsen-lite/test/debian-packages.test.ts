import { describe, expect, it } from 'vitest';
import { aptInstall } from '../src/debian-packages.js';

/**
 * Goal: two installers at once (two harness runs, or a test beside a run) both install. apt waits
 * for dpkg's lock by itself, but a second `apt-get update` fails at once on the package lists'
 * lock; a run that then gave up went on without its clock nemesis.
 */
function lockedFor(failures: number): { run: (args: readonly string[]) => void; calls: string[]; sleeps: number[] } {
  const calls: string[] = [];
  const sleeps: number[] = [];
  let left = failures;
  const run = (args: readonly string[]): void => {
    calls.push(args.filter((arg) => !arg.startsWith('-') && !arg.includes('::')).join(' '));
    if (left > 0) {
      left -= 1;
      throw Object.assign(new Error('apt-get failed'), {
        stderr: Buffer.from('E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)'),
      });
    }
  };
  return { run, calls, sleeps };
}

describe('installing a Debian package', () => {
  it('tries a command that found the lock taken again, and then installs', () => {
    const apt = lockedFor(2);
    expect(aptInstall('faketime', apt.run, (ms) => apt.sleeps.push(ms))).toBeUndefined();
    expect(apt.calls).toEqual(['update', 'update', 'update', 'install faketime']);
    expect(apt.sleeps).toHaveLength(2);
  });

  it('gives up on a lock held for good, and says which command failed', () => {
    const apt = lockedFor(Number.POSITIVE_INFINITY);
    const reason = aptInstall('faketime', apt.run, (ms) => apt.sleeps.push(ms));
    expect(reason).toMatch(/^installing faketime failed \(apt-get update\): .*Could not get lock/);
    expect(
      apt.sleeps.reduce((sum, ms) => sum + ms, 0),
      'waited in all (ms)',
    ).toBe(295_000);
  });

  it('does not retry a failure that is not a lock', () => {
    const calls: string[] = [];
    const reason = aptInstall(
      'no-such-package',
      (args) => {
        calls.push(args.join(' '));
        if (args.includes('install')) throw Object.assign(new Error('failed'), { stderr: Buffer.from('E: Unable to locate package no-such-package') });
      },
      () => {
        throw new Error('slept on a failure that is not a lock');
      },
    );
    expect(reason).toMatch(/Unable to locate package/);
    expect(calls).toHaveLength(2);
  });
});
