/**
 * The harness's side of `--net netns`: checks that namespaces can be used (root, `ip netns`,
 * iptables, installing Debian's iproute2 and iptables when missing), removes what a crashed run
 * with the same --base-port left behind, and names this run's network.
 *
 * Names: every run with --base-port P uses namespaces `jlP<3 hex>-…` (the hex digits differ per
 * run, so the watchdog of a crashed run can never delete a later run's namespaces) and the root
 * veth `jlP<3 hex>r`; a run removes every `jlP???-*` namespace and `jlP???r` link it finds at
 * start. Its subnet is 10.234.(P mod 256).0/24; one netns run per --base-port at a time.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { NamespaceNetwork, ensureNamespaceTools, removeLeftovers } from './netns.js';

/** The prefix shared by every run with this base port. */
export function runPrefixBase(basePort: number): string {
  return `jl${basePort}`;
}

/** The private /24 of runs with this base port (first three octets). */
export function runSubnet(basePort: number): string {
  return `10.234.${basePort % 256}`;
}

/** Namespaces and root links of any run with this base port, crashed or not. */
export function leftoverPatterns(basePort: number): { namespaces: RegExp; links: RegExp } {
  const base = runPrefixBase(basePort);
  return { namespaces: new RegExp(`^${base}[0-9a-f]{3}-`), links: new RegExp(`^${base}[0-9a-f]{3}r$`) };
}

/** The namespace network of a run (not created yet), or throws saying why --net netns cannot run here. */
export function prepareNamespaces(basePort: number, say: (line: string) => void): { readonly prefix: string; readonly network: NamespaceNetwork } {
  const problem = ensureNamespaceTools();
  if (problem !== undefined) throw new Error(`--net netns cannot run here: ${problem}; run without --net netns to use the loopback link proxies`);
  const patterns = leftoverPatterns(basePort);
  const removed = removeLeftovers(patterns.namespaces, patterns.links);
  if (removed.length > 0) say(`removed what an earlier run with --base-port ${basePort} left: ${removed.join(', ')}`);
  const subnet = runSubnet(basePort);
  const inUse = [execFileSync('ip', ['-4', '-o', 'addr', 'show']).toString('utf8'), execFileSync('ip', ['-4', 'route', 'show']).toString('utf8')]
    .join('\n')
    .split('\n')
    .filter((line) => line.includes(` ${subnet}.`) || line.startsWith(`${subnet}.`));
  if (inUse.length > 0)
    throw new Error(`--net netns needs the subnet ${subnet}.0/24, which this machine already uses (${inUse[0]?.trim()}); pass another --base-port`);
  const prefix = `${runPrefixBase(basePort)}${randomBytes(2).toString('hex').slice(0, 3)}`;
  return { prefix, network: new NamespaceNetwork({ prefix, subnet, rootLink: true }) };
}
