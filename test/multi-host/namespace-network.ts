/**
 * Test hosts as Linux network namespaces (`ip netns`, iproute2): each host has its own address on
 * a private subnet, and every host's veth ends on one bridge that lives in a switch namespace of
 * its own. Nothing is added to the machine's own namespace (no address, no route, no link), so no
 * traffic from these hosts can leave them, and parallel runs (each with its own name prefix) do
 * not see one another. Partitions are iptables rules inside the hosts' namespaces.
 *
 * Everything created is recorded and removed by `remove()`, which is safe to call more than once
 * and from a signal handler (it is synchronous).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

/** One test host: a namespace with one address. */
export interface NamespaceHost {
  readonly name: string;
  readonly namespace: string;
  readonly address: string;
}

function run(command: string, args: readonly string[]): string {
  return execFileSync(command, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 }).toString('utf8');
}

/** Why namespaces cannot be used here, or undefined when they can. */
export function namespaceSupportProblem(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces and iptables need root (run npm test as root to include the multi-host test)';
  try {
    run('ip', ['netns', 'list']);
  } catch (error) {
    return `ip netns does not work here: ${(error as Error).message.slice(0, 300)}`;
  }
  return undefined;
}

/** A private network of namespace hosts; `hosts[i]` has the address `${subnet}.${i + 11}`. */
export class NamespaceNetwork {
  /** The prefix of every name this network creates: unique per run. */
  readonly prefix = `rkv${randomBytes(3).toString('hex')}`;
  readonly hosts: NamespaceHost[] = [];
  private readonly namespaces: string[] = [];
  private readonly etcFolders: string[] = [];
  private iptablesCommand = 'iptables';
  private removed = false;
  private reaper: ChildProcess | undefined;
  private readonly aliases: { address: string; alias: string }[] = [];

  /** `subnet`: the first three octets of the private subnet, used only inside these namespaces. */
  constructor(readonly subnet = '10.233.0') {}

  /**
   * Starts a detached watchdog that removes this network's namespaces (and kills what runs in
   * them) once process `ownerPid` is gone: when a test run is killed outright, its afterAll and
   * signal handlers never run, and nothing else would clean up. Call before create().
   */
  startReaper(ownerPid: number): void {
    const script = [
      `while kill -0 ${ownerPid} 2>/dev/null; do sleep 1; done`,
      `for ns in $(ip netns list | awk '{print $1}' | grep '^${this.prefix}-'); do`,
      '  for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done',
      '  ip netns del "$ns" 2>/dev/null',
      'done',
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
      const host: NamespaceHost = { name, namespace, address: `${this.subnet}.${index + 11}` };
      this.addNamespace(namespace);
      // Both ends are created inside namespaces, so the machine's own namespace never holds either.
      run('ip', ['-n', switchNamespace, 'link', 'add', `p${index + 1}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', namespace]);
      run('ip', ['-n', switchNamespace, 'link', 'set', `p${index + 1}`, 'master', 'br0']);
      run('ip', ['-n', switchNamespace, 'link', 'set', `p${index + 1}`, 'up']);
      run('ip', ['-n', namespace, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0']);
      run('ip', ['-n', namespace, 'link', 'set', 'eth0', 'up']);
      run('ip', ['-n', namespace, 'link', 'set', 'lo', 'up']);
      this.hosts.push(host);
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
    const lines = ['127.0.0.1 localhost', ...this.hosts.map((host) => `${host.address} ${host.name}`), ...this.aliases.map(({ address, alias }) => `${address} ${alias}`)];
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

  /** The command line that runs `argv` inside `host`'s namespace. */
  execIn(host: NamespaceHost, argv: readonly string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', host.namespace, ...argv]];
  }

  private iptables(host: NamespaceHost, args: readonly string[]): void {
    try {
      run('ip', ['netns', 'exec', host.namespace, this.iptablesCommand, ...args]);
    } catch (error) {
      // Some kernels lack nf_tables; the legacy backend works there.
      if (this.iptablesCommand !== 'iptables') throw error;
      this.iptablesCommand = 'iptables-legacy';
      run('ip', ['netns', 'exec', host.namespace, this.iptablesCommand, ...args]);
    }
  }

  /** Cuts every host of `side` off from every host of `other`, both ways (iptables DROP in each host's namespace). */
  partition(side: readonly NamespaceHost[], other: readonly NamespaceHost[]): void {
    for (const [from, to] of [
      [side, other],
      [other, side],
    ] as const) {
      for (const host of from) {
        for (const peer of to) {
          this.iptables(host, ['-A', 'INPUT', '-s', peer.address, '-j', 'DROP']);
          this.iptables(host, ['-A', 'OUTPUT', '-d', peer.address, '-j', 'DROP']);
        }
      }
    }
  }

  /** Removes every partition rule. */
  heal(): void {
    for (const host of this.hosts) {
      this.iptables(host, ['-F', 'INPUT']);
      this.iptables(host, ['-F', 'OUTPUT']);
    }
  }

  /**
   * Kills whatever still runs in these namespaces (only processes this test started there),
   * then deletes the namespaces (which deletes their veths and the bridge) and their /etc files.
   */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    for (const namespace of this.namespaces) {
      try {
        const pids = run('ip', ['netns', 'pids', namespace]).split('\n').filter((pid) => /^\d+$/.test(pid));
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

  /** Namespaces of this network that still exist (for the test's own check that cleanup worked). */
  leftovers(): string[] {
    return run('ip', ['netns', 'list'])
      .split('\n')
      .map((line) => line.split(' ')[0] ?? '')
      .filter((name) => name.startsWith(this.prefix));
  }
}
