/**
 * Test hosts as Linux network namespaces (`ip netns`, iproute2): each host has its own address on
 * a private /24, and every host's veth ends on one bridge that lives in a switch namespace of its
 * own. Used by jepsen-lite's `--net netns` and by test/multi-host.
 *
 * By default nothing is added to the machine's own namespace (no address, no route, no link), so no
 * traffic from these hosts can leave them. With `rootLink` the machine's namespace gets one veth
 * into the switch with the address `${subnet}.1`, so a process there (jepsen-lite's clients)
 * reaches every host at its address; the hosts still have no route anywhere else.
 *
 * Faults are iptables rules (partitions, packet loss) and tc qdiscs (netem latency) inside the
 * hosts' namespaces; the pure functions below say which, and are unit-tested.
 *
 * Everything created is recorded and removed by `remove()`, which is safe to call more than once
 * and from a signal handler (it is synchronous). `removeLeftovers(pattern)` removes what a crashed
 * run with the same name pattern left behind.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { ensureDebianPackage } from './debian-packages.js';

/** One test host: a namespace with one address. */
export interface NamespaceHost {
  readonly name: string;
  readonly namespace: string;
  readonly address: string;
}

function run(command: string, args: readonly string[], input?: string): string {
  return execFileSync(command, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: 30_000, ...(input === undefined ? {} : { input }) }).toString('utf8');
}

function runAsync(command: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error === null) resolve(stdout);
      else reject(new Error(`${command} ${args.join(' ')} failed: ${(stderr || error.message).trim().slice(0, 500)}`));
    });
    child.stdin?.end(input ?? '');
  });
}

/** Why namespaces cannot be used here, or undefined when they can. */
export function namespaceSupportProblem(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces and iptables need root (run as root)';
  try {
    run('ip', ['netns', 'list']);
  } catch (error) {
    return `ip netns does not work here: ${(error as Error).message.slice(0, 300)}`;
  }
  return undefined;
}

/**
 * namespaceSupportProblem, after installing what is missing (Debian's iproute2 for `ip` and `tc`,
 * iptables), as root: undefined when `ip netns` and iptables are usable, else why not.
 */
export function ensureNamespaceTools(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces and iptables need root (run as root)';
  const hasIp = ['/usr/sbin/ip', '/usr/bin/ip', '/sbin/ip'].some((path) => existsSync(path));
  const ip = hasIp ? undefined : ensureDebianPackage('/usr/sbin/ip', 'iproute2');
  if (ip !== undefined) return ip;
  const iptables = ensureDebianPackage('/usr/sbin/iptables', 'iptables');
  if (iptables !== undefined) return iptables;
  return namespaceSupportProblem();
}

/** The links a fault touches: unordered pairs of host indexes. */
export type HostPairs = readonly (readonly [number, number])[];

/** What the iptables rules of the hosts express: pairs that cannot talk, and pairs that lose packets. */
export interface LinkRules {
  /** Pairs cut off from each other, both ways (DROP on INPUT and OUTPUT at both ends). */
  readonly blocked: HostPairs;
  /** Pairs whose packets are dropped at random, each direction with this probability (0..1). */
  readonly lossy?: { readonly pairs: HostPairs; readonly probability: number };
}

/** The other end of each pair that has `self` at one end. */
function peersOf(self: number, pairs: HostPairs): number[] {
  const peers = new Set<number>();
  for (const [a, b] of pairs) {
    if (a === self && b !== self) peers.add(b);
    if (b === self && a !== self) peers.add(a);
  }
  return [...peers].sort((left, right) => left - right);
}

/**
 * The `iptables-restore` input for host `self` (an index into `addresses`): its whole filter
 * table, so one call replaces the previous fault's rules atomically. A blocked pair drops
 * everything to and from the peer (no REJECT: a partition is silence, TCP retransmits into it); a
 * lossy pair drops each outgoing packet with the probability (so each direction loses that share,
 * once). Traffic from anything else, the harness's clients included, is never touched.
 */
export function iptablesRulesFor(self: number, addresses: readonly string[], rules: LinkRules): string {
  const address = (index: number): string => {
    const found = addresses[index];
    if (found === undefined) throw new Error(`no host ${index} (there are ${addresses.length})`);
    return `${found}/32`;
  };
  const lines = ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'];
  for (const peer of peersOf(self, rules.blocked)) {
    lines.push(`-A INPUT -s ${address(peer)} -j DROP`, `-A OUTPUT -d ${address(peer)} -j DROP`);
  }
  if (rules.lossy !== undefined && rules.lossy.probability > 0) {
    const probability = Math.min(1, rules.lossy.probability);
    for (const peer of peersOf(self, rules.lossy.pairs)) {
      lines.push(`-A OUTPUT -d ${address(peer)} -m statistic --mode random --probability ${probability.toFixed(4)} -j DROP`);
    }
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Every pair of hosts with at least one end in `nodes`, out of `hostCount`. */
export function pairsTouching(nodes: readonly number[], hostCount: number): [number, number][] {
  const chosen = new Set(nodes);
  const pairs: [number, number][] = [];
  for (let a = 0; a < hostCount; a++) for (let b = a + 1; b < hostCount; b++) if (chosen.has(a) || chosen.has(b)) pairs.push([a, b]);
  return pairs;
}

/** The device of each host's veth, inside its namespace. */
export const hostDevice = 'eth0';

/**
 * The `tc` commands (argument lists, run inside host `self`'s namespace) that delay its outgoing
 * packets to the peers it shares a pair with by `delayMs` ± `jitterMs` (netem), and nothing else:
 * an HTB root sends unmatched traffic (clients, unaffected peers) through a class without delay,
 * and a u32 filter per peer address sends that peer's packets through the class with netem.
 * Empty when `self` is in no pair. Undo with `tcResetCommand`.
 */
export function netemCommandsFor(
  self: number,
  addresses: readonly string[],
  pairs: HostPairs,
  delayMs: number,
  jitterMs: number,
  device = hostDevice,
): string[][] {
  const peers = peersOf(self, pairs);
  if (peers.length === 0) return [];
  const commands = [
    ['qdisc', 'replace', 'dev', device, 'root', 'handle', '1:', 'htb', 'default', '1'],
    ['class', 'add', 'dev', device, 'parent', '1:', 'classid', '1:1', 'htb', 'rate', '10gbit'],
    ['class', 'add', 'dev', device, 'parent', '1:', 'classid', '1:2', 'htb', 'rate', '10gbit'],
    [
      'qdisc',
      'add',
      'dev',
      device,
      'parent',
      '1:2',
      'handle',
      '20:',
      'netem',
      'delay',
      `${Math.round(delayMs)}ms`,
      ...(jitterMs > 0 ? [`${Math.round(jitterMs)}ms`] : []),
    ],
  ];
  for (const peer of peers) {
    const address = addresses[peer];
    if (address === undefined) throw new Error(`no host ${peer} (there are ${addresses.length})`);
    commands.push([
      'filter',
      'add',
      'dev',
      device,
      'parent',
      '1:',
      'protocol',
      'ip',
      'prio',
      '1',
      'u32',
      'match',
      'ip',
      'dst',
      `${address}/32`,
      'flowid',
      '1:2',
    ]);
  }
  return commands;
}

/** The `tc` command that removes every qdisc netemCommandsFor added (it fails harmlessly when there is none). */
export function tcResetCommand(device = hostDevice): string[] {
  return ['qdisc', 'del', 'dev', device, 'root'];
}

/**
 * Why tc netem cannot delay packets here (the kernel lacks sch_netem, say), or undefined when it
 * can: tried on the loopback device of a namespace `${prefix}-probe` made for it and deleted again.
 */
export function netemProblem(prefix: string): string | undefined {
  const namespace = `${prefix}-probe`;
  try {
    run('ip', ['netns', 'add', namespace]);
  } catch (error) {
    return `cannot make a namespace to try netem in: ${(error as Error).message.slice(0, 300)}`;
  }
  try {
    run('ip', ['netns', 'exec', namespace, 'tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms']);
    return undefined;
  } catch (error) {
    const stderr = String((error as { stderr?: Buffer }).stderr ?? (error as Error).message).trim();
    return `tc netem does not work here (${stderr.slice(0, 200)}): the kernel needs sch_netem (CONFIG_NET_SCH_NETEM)`;
  } finally {
    try {
      run('ip', ['netns', 'del', namespace]);
    } catch {
      // Already gone.
    }
  }
}

/** Settings of a namespace network; every one has a default. */
export interface NamespaceNetworkOptions {
  /** The prefix of every name this network creates (namespaces `${prefix}-…`, the root veth `${prefix}r`); default `rkv` + 6 random hex digits. At most 12 characters. */
  readonly prefix?: string;
  /** The first three octets of the private /24 (default 10.233.0). */
  readonly subnet?: string;
  /** Give the machine's own namespace the address `${subnet}.1` on the bridge (default false). */
  readonly rootLink?: boolean;
}

/**
 * Removes what a crashed run left: every namespace whose name matches `pattern` (with whatever
 * still runs in it), every link of the machine's namespace whose name matches `linkPattern`,
 * and the namespaces' /etc/netns folders. Returns what it removed, for the log.
 */
export function removeLeftovers(pattern: RegExp, linkPattern?: RegExp): string[] {
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = run('ip', ['netns', 'list'])
      .split('\n')
      .map((line) => line.split(' ')[0] ?? '')
      .filter((name) => pattern.test(name));
  } catch {
    return removed;
  }
  for (const namespace of names) {
    try {
      for (const pid of run('ip', ['netns', 'pids', namespace])
        .split('\n')
        .filter((text) => /^\d+$/.test(text)))
        process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Nothing runs there, or it is already gone.
    }
    try {
      run('ip', ['netns', 'del', namespace]);
      removed.push(`namespace ${namespace}`);
    } catch {
      // Gone meanwhile.
    }
    rmSync(`/etc/netns/${namespace}`, { recursive: true, force: true });
  }
  if (linkPattern !== undefined) {
    try {
      const links = run('ip', ['-o', 'link', 'show'])
        .split('\n')
        .map((line) => (line.split(': ')[1] ?? '').split('@')[0] ?? '')
        .filter((name) => linkPattern.test(name));
      for (const link of links) {
        try {
          run('ip', ['link', 'del', link]);
          removed.push(`link ${link}`);
        } catch {
          // Went with its peer's namespace.
        }
      }
    } catch {
      // No links to look at.
    }
  }
  try {
    if (existsSync('/etc/netns'))
      for (const entry of readdirSync('/etc/netns')) if (pattern.test(entry)) rmSync(`/etc/netns/${entry}`, { recursive: true, force: true });
  } catch {
    // Nothing there.
  }
  return removed;
}

/** A private network of namespace hosts; `hosts[i]` has the address `${subnet}.${i + 11}`. */
export class NamespaceNetwork {
  /** The prefix of every name this network creates: unique per run. */
  readonly prefix: string;
  readonly subnet: string;
  /** The machine's own address on the bridge, with `rootLink`. */
  readonly rootAddress: string | undefined;
  readonly hosts: NamespaceHost[] = [];
  private readonly namespaces: string[] = [];
  private readonly etcFolders: string[] = [];
  private rootLinkName: string | undefined;
  private iptablesRestore = 'iptables-restore';
  private removed = false;
  private reaper: ChildProcess | undefined;
  private readonly aliases: { address: string; alias: string }[] = [];

  constructor(options: NamespaceNetworkOptions = {}) {
    this.prefix = options.prefix ?? `rkv${randomBytes(3).toString('hex')}`;
    if (!/^[a-z0-9]{1,12}$/.test(this.prefix))
      throw new Error(`a namespace prefix is 1 to 12 lower-case letters and digits (its veth name must fit 15 characters), got '${this.prefix}'`);
    this.subnet = options.subnet ?? '10.233.0';
    this.rootAddress = options.rootLink === true ? `${this.subnet}.1` : undefined;
  }

  /** The address hosts[index] has (or will have once created). */
  hostAddress(index: number): string {
    return `${this.subnet}.${index + 11}`;
  }

  /** The name of the veth end in the machine's own namespace (with `rootLink`). */
  get rootLink(): string {
    return `${this.prefix}r`;
  }

  /**
   * Starts a detached watchdog that removes this network's namespaces (and kills what runs in
   * them) once process `ownerPid` is gone: when a run is killed outright, its signal handlers
   * never run, and nothing else would clean up. Call before create().
   */
  startReaper(ownerPid: number): void {
    const script = [
      `while kill -0 ${ownerPid} 2>/dev/null; do sleep 1; done`,
      `for ns in $(ip netns list | awk '{print $1}' | grep '^${this.prefix}-'); do`,
      '  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done',
      '  ip netns del "$ns" 2>/dev/null',
      'done',
      `ip link del ${this.rootLink} 2>/dev/null`,
      `rm -rf /etc/netns/${this.prefix}-*`,
      'rmdir /etc/netns 2>/dev/null',
      'exit 0',
    ].join('\n');
    this.reaper = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
    this.reaper.unref();
  }

  /** The switch namespace (holds the bridge) and one namespace per host name, linked by veths. */
  create(hostNames: readonly string[]): void {
    const switchNamespace = `${this.prefix}-sw`;
    this.addNamespace(switchNamespace);
    run('ip', ['-n', switchNamespace, 'link', 'add', 'br0', 'type', 'bridge']);
    run('ip', ['-n', switchNamespace, 'link', 'set', 'br0', 'up']);
    for (const [index, name] of hostNames.entries()) {
      const namespace = `${this.prefix}-h${index + 1}`;
      const host: NamespaceHost = { name, namespace, address: this.hostAddress(index) };
      this.addNamespace(namespace);
      // Both ends are created inside namespaces, so the machine's own namespace never holds either.
      run('ip', ['-n', switchNamespace, 'link', 'add', `p${index + 1}`, 'type', 'veth', 'peer', 'name', hostDevice, 'netns', namespace]);
      run('ip', ['-n', switchNamespace, 'link', 'set', `p${index + 1}`, 'master', 'br0']);
      run('ip', ['-n', switchNamespace, 'link', 'set', `p${index + 1}`, 'up']);
      run('ip', ['-n', namespace, 'addr', 'add', `${host.address}/24`, 'dev', hostDevice]);
      run('ip', ['-n', namespace, 'link', 'set', hostDevice, 'up']);
      run('ip', ['-n', namespace, 'link', 'set', 'lo', 'up']);
      this.hosts.push(host);
    }
    if (this.rootAddress !== undefined) {
      // One veth from the machine's namespace into the switch: deleting the switch namespace deletes it too.
      this.rootLinkName = this.rootLink;
      run('ip', ['link', 'add', this.rootLink, 'type', 'veth', 'peer', 'name', 'root', 'netns', switchNamespace]);
      run('ip', ['-n', switchNamespace, 'link', 'set', 'root', 'master', 'br0']);
      run('ip', ['-n', switchNamespace, 'link', 'set', 'root', 'up']);
      run('ip', ['addr', 'add', `${this.rootAddress}/24`, 'dev', this.rootLink]);
      run('ip', ['link', 'set', this.rootLink, 'up']);
    }
    // Every host resolves every other by name: `ip netns exec` bind-mounts /etc/netns/NS/hosts over /etc/hosts.
    for (const namespace of this.namespaces) {
      const folder = `/etc/netns/${namespace}`;
      mkdirSync(folder, { recursive: true });
      this.etcFolders.push(folder);
    }
    this.writeHostsFiles();
  }

  /**
   * Gives `host` one more DNS name in every namespace. The files are rewritten in place (same
   * inode), so processes already running, whose /etc/hosts is a bind mount of them, see it at once.
   */
  addAlias(host: NamespaceHost, alias: string): void {
    this.aliases.push({ address: host.address, alias });
    this.writeHostsFiles();
  }

  private writeHostsFiles(): void {
    const lines = [
      '127.0.0.1 localhost',
      ...this.hosts.map((host) => `${host.address} ${host.name}`),
      ...this.aliases.map(({ address, alias }) => `${address} ${alias}`),
    ];
    for (const folder of this.etcFolders) {
      writeFileSync(`${folder}/hosts`, `${lines.join('\n')}\n`);
      // Names resolve from that file alone: no DNS query is ever sent from these hosts.
      writeFileSync(`${folder}/nsswitch.conf`, 'hosts: files\n');
      writeFileSync(`${folder}/resolv.conf`, '# no name servers: the test hosts resolve names from /etc/hosts only\n');
    }
  }

  private addNamespace(namespace: string): void {
    run('ip', ['netns', 'add', namespace]);
    this.namespaces.push(namespace);
  }

  /**
   * The command line that runs `argv` inside `host`'s namespace, with `environment` set for that
   * program only (through env(1), so `ip` itself never loads an LD_PRELOAD meant for the program).
   * `ip netns exec` and env exec the program in place: the child's pid is the program's pid.
   */
  execIn(host: NamespaceHost, argv: readonly string[], environment: Readonly<Record<string, string>> = {}): [string, string[]] {
    const assignments = Object.entries(environment).map(([name, value]) => `${name}=${value}`);
    return ['ip', ['netns', 'exec', host.namespace, ...(assignments.length > 0 ? ['env', ...assignments] : []), ...argv]];
  }

  /** Replaces host's filter table with `rules` (iptables-restore text, see iptablesRulesFor). */
  async restoreRules(host: NamespaceHost, rules: string): Promise<void> {
    try {
      await runAsync('ip', ['netns', 'exec', host.namespace, this.iptablesRestore], rules);
    } catch (error) {
      // Some kernels lack nf_tables; the legacy backend works there.
      if (this.iptablesRestore !== 'iptables-restore') throw error;
      this.iptablesRestore = 'iptables-legacy-restore';
      await runAsync('ip', ['netns', 'exec', host.namespace, this.iptablesRestore], rules);
    }
  }

  /** Runs `tc ARGS` inside host's namespace. */
  async tc(host: NamespaceHost, args: readonly string[]): Promise<void> {
    await runAsync('ip', ['netns', 'exec', host.namespace, 'tc', ...args]);
  }

  /** Cuts every host of `side` off from every host of `other`, both ways (iptables DROP in each host's namespace); other rules are replaced. */
  async partition(side: readonly NamespaceHost[], other: readonly NamespaceHost[]): Promise<void> {
    const index = (host: NamespaceHost): number => this.hosts.indexOf(host);
    const blocked: [number, number][] = [];
    for (const a of side) for (const b of other) blocked.push([index(a), index(b)]);
    await this.applyRules({ blocked });
  }

  /** Replaces every host's rules with `rules`. */
  async applyRules(rules: LinkRules): Promise<void> {
    const addresses = this.hosts.map((host) => host.address);
    await Promise.all(this.hosts.map((host, self) => this.restoreRules(host, iptablesRulesFor(self, addresses, rules))));
  }

  /** Removes every partition and loss rule. */
  async heal(): Promise<void> {
    await this.applyRules({ blocked: [] });
  }

  /**
   * Kills whatever still runs in these namespaces (only processes this network's user started
   * there), then deletes the namespaces (which deletes their veths, the bridge and the machine's
   * end of the root veth) and their /etc files.
   */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    for (const namespace of this.namespaces) {
      try {
        const pids = run('ip', ['netns', 'pids', namespace])
          .split('\n')
          .filter((pid) => /^\d+$/.test(pid));
        for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
      } catch {
        // The namespace may already be gone.
      }
    }
    for (const namespace of this.namespaces.reverse()) {
      try {
        run('ip', ['netns', 'del', namespace]);
      } catch {
        // Already gone.
      }
    }
    if (this.rootLinkName !== undefined) {
      try {
        run('ip', ['link', 'del', this.rootLinkName]);
      } catch {
        // Went with the switch namespace, as it should.
      }
    }
    for (const folder of this.etcFolders) rmSync(folder, { recursive: true, force: true });
    // Everything is gone: the watchdog has nothing left to do.
    this.reaper?.kill('SIGKILL');
    try {
      // /etc/netns itself, only when no one else keeps a namespace's files there.
      execFileSync('rmdir', ['/etc/netns'], { stdio: 'ignore' });
    } catch {
      // Not empty, or already gone.
    }
  }

  /** Namespaces of this network that still exist (for a check that cleanup worked). */
  leftovers(): string[] {
    return run('ip', ['netns', 'list'])
      .split('\n')
      .map((line) => line.split(' ')[0] ?? '')
      .filter((name) => name.startsWith(`${this.prefix}-`));
  }
}
