import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type NodeProcess,
  call,
  describeMembership,
  killNode,
  nodeStatus,
  pollDeadlineMs,
  freePorts,
  processTestTimeoutMs,
  signalNode,
  startCluster,
  temporaryFolder,
  waitFor,
} from './processes.js';

/**
 * Lifeguard on real processes (issue 21): one member of a 4-node cluster is starved with
 * SIGSTOP/SIGCONT bursts of seconds at a time. Its event loop stands still, so when it resumes
 * every probe it had out looks timed out; without local health awareness it would accuse the
 * healthy members. The healthy members (never stopped) must never be judged down by anyone,
 * which every node logs (gossiper: 'member judged down', with the member and its accuser), and
 * /status of the healthy nodes is polled meanwhile as a second witness. After the bursts every
 * node sees all 4 members up again.
 *
 * Ports: free ones the system picks, each with its peer port free too (`freePorts`), as the other
 * suites on real processes do: fixed ports here (peer ports 21600-21603) were also inside
 * jepsen-lite's sharded run's range (21600-21799), and CI failed when the two ran at once.
 */
/** Bursts: stopped this long, then running this long, this many times (all in wall-clock; nothing is asserted on time). */
const stoppedMs = 3000;
const runningMs = 2000;
const bursts = 5;

describe('Lifeguard: a member starved by SIGSTOP/SIGCONT bursts', () => {
  const folder = temporaryFolder('ringkv-lifeguard-');
  const nodes: NodeProcess[] = [];
  /** Every 'member judged down' log line of every node, as (node, line). */
  const downJudgements: {
    by: string;
    line: { member?: string; state?: string; accuser?: string };
  }[] = [];

  beforeAll(async () => {
    const ports = await freePorts(4);
    await startCluster(4, {
      folder: folder.path,
      nodes,
      ports,
      env: { RINGKV_CLUSTER_SECRET: 'lifeguard-secret-0123456789abcdef' },
      until: 'settled',
    });
  }, processTestTimeoutMs);

  afterAll(async () => {
    for (const node of nodes) {
      signalNode(node, 'SIGCONT');
      await killNode(node);
    }
    folder.remove();
  }, processTestTimeoutMs);

  it(
    'judges no healthy member down while one member stalls for seconds at a time, and converges after',
    async () => {
      const ids = await Promise.all(nodes.map(async (node) => (await nodeStatus(node)).node.id));
      const starved = nodes[3]!;
      const starvedId = ids[3]!;
      const healthy = nodes.slice(0, 3);
      const healthyIds = new Set(ids.slice(0, 3));

      // Every log line from now on (a node's `output` keeps only its tail, so lines are collected as they come).
      for (const [index, node] of nodes.entries()) {
        let partial = '';
        node.child!.stdout!.on('data', (chunk: Buffer) => {
          const lines = (partial + chunk.toString('utf8')).split('\n');
          partial = lines.pop() ?? '';
          for (const text of lines) {
            if (!text.includes('member judged down')) continue;
            downJudgements.push({
              by: ids[index]!,
              line: JSON.parse(text) as { member?: string; state?: string; accuser?: string },
            });
          }
        });
      }
      const seenDownInStatus: string[] = [];
      let polling = true;
      const poller = (async () => {
        while (polling) {
          await Promise.all(
            healthy.map(async (node) => {
              try {
                const status = await nodeStatus(node);
                for (const member of status.members) {
                  if (healthyIds.has(member.id) && member.status === 'down') seenDownInStatus.push(`${node.address} saw ${member.id} down`);
                }
              } catch {
                // a slow answer on a loaded machine is no finding; the logs are the complete record
              }
            }),
          );
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      })();
      // The starved member's own health score: proof that the bursts were felt (a checker that saw no stall checked nothing).
      let starvedHealthScoreMax = 0;
      const starvedPoller = (async () => {
        while (polling) {
          try {
            const status = (await call(starved, 'GET', '/status')).json<{
              gossip: { healthScore: number };
            }>();
            starvedHealthScoreMax = Math.max(starvedHealthScoreMax, status.gossip.healthScore);
          } catch {
            // answered after SIGCONT, or not at all while stopped
          }
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();

      for (let burst = 0; burst < bursts; burst++) {
        signalNode(starved, 'SIGSTOP');
        await new Promise((resolve) => setTimeout(resolve, stoppedMs));
        signalNode(starved, 'SIGCONT');
        await new Promise((resolve) => setTimeout(resolve, runningMs));
      }

      // Converged after: every node sees all 4 members up in a settled ring.
      await waitFor('every node to see 4 members up after the bursts', pollDeadlineMs, async (see) => {
        const views = await Promise.all(nodes.map(async (node) => ({ node, status: await nodeStatus(node) })));
        see(views.map(({ node, status }) => `${node.address} sees ${describeMembership(status)}`).join('; '));
        return views.every(({ status }) => status.members.filter((member) => member.status === 'up').length === 4 && status.ring?.members.length === 4);
      });
      polling = false;
      await Promise.all([poller, starvedPoller]);

      const falseDowns = downJudgements.filter(({ line }) => line.member !== undefined && healthyIds.has(line.member));
      expect(falseDowns, `healthy members judged down (starved member ${starvedId})`).toEqual([]);
      expect(seenDownInStatus, 'healthy members shown down in /status').toEqual([]);
      expect(starvedHealthScoreMax, 'the starved member never noticed a stall: the bursts tested nothing').toBeGreaterThan(0);
    },
    processTestTimeoutMs,
  );
});
