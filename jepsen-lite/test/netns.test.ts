import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { parseRunOptions } from '../src/cli-options.js';
import { type Fault, faultSummary, planFault, planLinkFault, planPartition } from '../src/nemesis.js';
import { droppedPackets } from '../src/netns-faults.js';
import { leftoverPatterns, runSubnet } from '../src/netns-run.js';
import { iptablesRulesFor, netemCommandsFor, pairsTouching, tcResetCommand } from '../src/netns.js';

/**
 * What `--net netns` does to the hosts' namespaces, as pure functions: a partition or a loss
 * fault becomes each host's iptables filter table, latency becomes tc commands. The rules must
 * cut exactly the pairs the fault names, both ways, and never the harness's clients.
 */

const addresses = ['10.234.1.11', '10.234.1.12', '10.234.1.13', '10.234.1.14', '10.234.1.15'];

/** The peers host `self` drops everything to and from, read back from its rules. */
function droppedPeers(rules: string): { input: string[]; output: string[] } {
  const input = [...rules.matchAll(/^-A INPUT -s (\S+)\/32 -j DROP$/gm)].map((match) => match[1] as string);
  const output = [...rules.matchAll(/^-A OUTPUT -d (\S+)\/32 -j DROP$/gm)].map((match) => match[1] as string);
  return { input: input.sort(), output: output.sort() };
}

function partitionOf(fault: Fault): Extract<Fault, { kind: 'partition' }> {
  if (fault.kind !== 'partition') throw new Error('expected a partition');
  return fault;
}

describe('iptables rules of a partition', () => {
  it('are a whole filter table that iptables-restore replaces at once', () => {
    const rules = iptablesRulesFor(0, addresses, { blocked: [[0, 1]] });
    expect(rules).toBe(
      [
        '*filter',
        ':INPUT ACCEPT [0:0]',
        ':FORWARD ACCEPT [0:0]',
        ':OUTPUT ACCEPT [0:0]',
        '-A INPUT -s 10.234.1.12/32 -j DROP',
        '-A OUTPUT -d 10.234.1.12/32 -j DROP',
        'COMMIT',
        '',
      ].join('\n'),
    );
    // Healed: the same table with no rule at all.
    expect(iptablesRulesFor(0, addresses, { blocked: [] })).not.toContain('-A ');
  });

  it('cut exactly the blocked pairs of every shape, both ways, at both ends', () => {
    for (const shape of ['halves', 'majority', 'isolate', 'bridge', 'ring'] as const) {
      for (let seed = 0; seed < 20; seed++) {
        const fault = partitionOf(planPartition(shape, 5, new SeededRandom(seed)));
        for (let self = 0; self < 5; self++) {
          const expected = fault.blocked
            .filter(([a, b]) => a === self || b === self)
            .map(([a, b]) => addresses[a === self ? b : a] as string)
            .sort();
          const peers = droppedPeers(iptablesRulesFor(self, addresses, { blocked: fault.blocked }));
          expect(peers.input, `${shape} seed ${seed} host ${self}`).toEqual(expected);
          expect(peers.output, `${shape} seed ${seed} host ${self}`).toEqual(expected);
        }
      }
    }
  });

  it('let the bridge node of a bridge partition reach everyone', () => {
    const fault = partitionOf(planPartition('bridge', 5, new SeededRandom(3)));
    const [left, right] = fault.groups as [number[], number[]];
    const bridge = left.find((node) => right.includes(node)) as number;
    expect(iptablesRulesFor(bridge, addresses, { blocked: fault.blocked })).not.toContain('DROP');
    const other = left.find((node) => node !== bridge) as number;
    expect(droppedPeers(iptablesRulesFor(other, addresses, { blocked: fault.blocked })).input).toEqual(
      right
        .filter((node) => node !== bridge)
        .map((node) => addresses[node])
        .sort(),
    );
  });

  it('never name an address outside the hosts, so the clients on the bridge are never cut', () => {
    const fault = partitionOf(planPartition('halves', 5, new SeededRandom(1)));
    for (let self = 0; self < 5; self++) {
      const named = [...iptablesRulesFor(self, addresses, { blocked: fault.blocked }).matchAll(/(\d+\.\d+\.\d+\.\d+)/g)].map((match) => match[1]);
      for (const address of named) expect(addresses).toContain(address);
    }
  });
});

describe('a loss fault', () => {
  it('drops each outgoing packet on the links of its nodes with its probability, and nothing else', () => {
    const pairs = pairsTouching([1], 5);
    expect(pairs).toEqual([
      [0, 1],
      [1, 2],
      [1, 3],
      [1, 4],
    ]);
    const lossy = iptablesRulesFor(1, addresses, { blocked: [], lossy: { pairs, probability: 0.2 } });
    expect(lossy.match(/-m statistic --mode random --probability 0\.2000 -j DROP/g)).toHaveLength(4);
    expect(lossy).not.toContain('INPUT -s');
    // Host 0 loses only towards node 1; hosts 0 and 2 keep their own link whole.
    const other = iptablesRulesFor(0, addresses, { blocked: [], lossy: { pairs, probability: 0.2 } });
    expect(other).toContain('-A OUTPUT -d 10.234.1.12/32 -m statistic');
    expect(other).not.toContain('10.234.1.13');
  });

  it('is planned over 1 to N nodes with 5 to 40 percent, from the seed', () => {
    for (let seed = 0; seed < 100; seed++) {
      const fault = planLinkFault('loss', 5, new SeededRandom(seed));
      if (fault.kind !== 'loss') throw new Error('expected loss');
      expect(fault.nodes.length).toBeGreaterThanOrEqual(1);
      expect(fault.nodes.length).toBeLessThanOrEqual(5);
      expect(fault.percent).toBeGreaterThanOrEqual(5);
      expect(fault.percent).toBeLessThanOrEqual(40);
    }
    expect(planFault('loss', 5, new SeededRandom(4))).toEqual(planFault('loss', 5, new SeededRandom(4)));
  });
});

describe('a latency fault', () => {
  it('delays only the packets to the affected peers, through netem under an HTB root', () => {
    const pairs = pairsTouching([0], 3);
    const commands = netemCommandsFor(1, addresses.slice(0, 3), pairs, 200, 40);
    expect(commands.map((command) => command.join(' '))).toEqual([
      'qdisc replace dev eth0 root handle 1: htb default 1',
      'class add dev eth0 parent 1: classid 1:1 htb rate 10gbit',
      'class add dev eth0 parent 1: classid 1:2 htb rate 10gbit',
      'qdisc add dev eth0 parent 1:2 handle 20: netem delay 200ms 40ms',
      'filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst 10.234.1.11/32 flowid 1:2',
    ]);
    // Host 0 is in every pair: one filter per peer.
    expect(netemCommandsFor(0, addresses.slice(0, 3), pairs, 200, 40).filter((command) => command[0] === 'filter')).toHaveLength(2);
    expect(tcResetCommand()).toEqual(['qdisc', 'del', 'dev', 'eth0', 'root']);
  });

  it('leaves a host outside every affected pair alone', () => {
    expect(netemCommandsFor(2, addresses, [[0, 1]], 100, 0)).toEqual([]);
  });

  it('is planned with 50..500 ms and a fifth of it as jitter, and shows them in its summary', () => {
    for (let seed = 0; seed < 100; seed++) {
      const fault = planLinkFault('latency', 5, new SeededRandom(seed));
      if (fault.kind !== 'latency') throw new Error('expected latency');
      expect(fault.delayMs % 50).toBe(0);
      expect(fault.delayMs).toBeGreaterThanOrEqual(50);
      expect(fault.delayMs).toBeLessThanOrEqual(500);
      expect(fault.jitterMs).toBe(Math.round(fault.delayMs / 5));
    }
    expect(faultSummary({ kind: 'latency', nodes: [0, 2], delayMs: 150, jitterMs: 30 }, ['n1', 'n2', 'n3'])).toBe('latency n1,n3 150±30 ms');
  });
});

describe('the namespace run', () => {
  it('counts the packets the DROP rules dropped, from iptables-save -c', () => {
    const saved = [
      '*filter',
      ':INPUT ACCEPT [10:600]',
      '[7:420] -A INPUT -s 10.234.1.12/32 -j DROP',
      '[3:180] -A OUTPUT -d 10.234.1.12/32 -m statistic --mode random --probability 0.20000000019 -j DROP',
      'COMMIT',
    ].join('\n');
    expect(droppedPackets(saved)).toBe(10);
  });

  it('removes leftovers of any run with its base port, and only those', () => {
    const { namespaces, links } = leftoverPatterns(18600);
    expect(namespaces.test('jl18600a1f-h1')).toBe(true);
    expect(namespaces.test('jl18600a1f-sw')).toBe(true);
    expect(namespaces.test('jl18601a1f-h1')).toBe(false);
    expect(namespaces.test('rkv123456-h1')).toBe(false);
    expect(links.test('jl18600a1fr')).toBe(true);
    expect(links.test('eth0')).toBe(false);
    expect(runSubnet(18600)).toBe('10.234.168');
  });

  it('takes --net, refuses latency and loss without namespaces, and has no peer transport to choose', () => {
    expect(parseRunOptions([])).toMatchObject({ net: 'loopback' });
    expect(parseRunOptions(['--net', 'netns', '--nemesis', 'latency,loss'])).toMatchObject({ net: 'netns', faults: ['latency', 'loss'] });
    expect(() => parseRunOptions(['--nemesis', 'partition,loss'])).toThrow(/--nemesis loss needs --net netns/);
    expect(() => parseRunOptions(['--net', 'docker'])).toThrow(/--net must be one of loopback, netns/);
    // Nodes talk only on their peer ports: the flag that chose HTTP instead is gone.
    expect(() => parseRunOptions(['--peer-transport', 'http'])).toThrow(/peer-transport/);
  });
});
