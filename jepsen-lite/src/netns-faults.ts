/**
 * The nemesis's link faults for `--net netns`: every slot of the cluster is a host of a
 * NamespaceNetwork (slot i = hosts[i]), and a fault is rules inside the hosts' namespaces.
 * Partitions and packet loss are each host's iptables filter table, replaced whole by
 * iptables-restore on every change; latency is a tc netem qdisc on each affected host's veth. One
 * fault is in force at a time, so each change first undoes the other kind.
 *
 * It also counts the packets its DROP rules dropped (read from the rules' counters before they
 * are replaced), so a run can show that a partition really cut traffic.
 */
import { execFile } from 'node:child_process';
import type { Fault, FaultNetwork } from './nemesis.js';
import { type LinkRules, type NamespaceNetwork, netemCommandsFor, pairsTouching, tcResetCommand } from './netns.js';

/** Packets dropped by the harness's rules, by the kind of fault that dropped them. */
export interface DropCounts {
  partition: number;
  loss: number;
}

/** The packets of `iptables-save -c` output counted on DROP rules. */
export function droppedPackets(saved: string): number {
  let total = 0;
  for (const line of saved.split('\n')) {
    const match = /^\[(\d+):\d+\] .*-j DROP\s*$/.exec(line.trim());
    if (match !== null) total += Number(match[1]);
  }
  return total;
}

export class NamespaceFaults implements FaultNetwork {
  private rules: LinkRules = { blocked: [] };
  private readonly delayed = new Set<number>();
  /** Packets dropped so far. */
  readonly dropped: DropCounts = { partition: 0, loss: 0 };

  constructor(private readonly network: NamespaceNetwork) {}

  private get addresses(): string[] {
    return this.network.hosts.map((host) => host.address);
  }

  async partition(blockedPairs: readonly (readonly [number, number])[]): Promise<void> {
    await this.clearDelays();
    await this.setRules({ blocked: blockedPairs });
  }

  async degrade(fault: Extract<Fault, { kind: 'latency' | 'loss' }>): Promise<void> {
    const pairs = pairsTouching(fault.nodes, this.network.hosts.length);
    if (fault.kind === 'loss') {
      await this.clearDelays();
      await this.setRules({ blocked: [], lossy: { pairs, probability: fault.percent / 100 } });
      return;
    }
    await this.setRules({ blocked: [] });
    await this.clearDelays();
    await Promise.all(
      this.network.hosts.map(async (host, self) => {
        const commands = netemCommandsFor(self, this.addresses, pairs, fault.delayMs, fault.jitterMs);
        if (commands.length === 0) return;
        this.delayed.add(self);
        for (const command of commands) await this.network.tc(host, command);
      }),
    );
  }

  async healAll(): Promise<void> {
    await this.setRules({ blocked: [] });
    await this.clearDelays();
  }

  private async clearDelays(): Promise<void> {
    const hosts = [...this.delayed];
    this.delayed.clear();
    await Promise.all(
      hosts.map(async (self) => {
        const host = this.network.hosts[self];
        if (host !== undefined) await this.network.tc(host, tcResetCommand());
      }),
    );
  }

  /** Counts what the current rules dropped, then replaces them. */
  private async setRules(rules: LinkRules): Promise<void> {
    const previous = this.rules;
    if (previous.blocked.length > 0 || previous.lossy !== undefined) {
      const counts = await Promise.all(this.network.hosts.map((host) => saveCounters(host.namespace).catch(() => '')));
      const total = counts.reduce((sum, saved) => sum + droppedPackets(saved), 0);
      if (previous.lossy !== undefined) this.dropped.loss += total;
      else this.dropped.partition += total;
    }
    this.rules = rules;
    await this.network.applyRules(rules);
  }
}

function saveCounters(namespace: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', ['netns', 'exec', namespace, 'iptables-save', '-c', '-t', 'filter'], { timeout: 30_000 }, (error, stdout) =>
      error === null ? resolve(stdout) : reject(error),
    );
  });
}
