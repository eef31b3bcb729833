import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type NodeProcess,
  call,
  describeExit,
  killNode,
  pollDeadlineMs,
  processTestTimeoutMs,
  restartNode,
  startCluster,
  temporaryFolder,
  waitFor,
  waitHealthy,
} from './processes.js';

/**
 * Goal (README, "Consistent buckets"; issue 22): on a consistent bucket, a counter incremented
 * by read-then-If-Match from several clients on several nodes, while one of three nodes is
 * kill -9'd and restarted, never loses an acknowledged increment (no two 204s for the same new
 * value, and the final value is within [acknowledged, acknowledged + unknown]), and no read ever
 * returns a value older than one already acknowledged before the read began.
 */

/** Increments acknowledged before the kill, while the node is down, and after its restart: small, so the test stays short. */
const acksPerPhase = 12;
const clientCount = 4;

interface Tally {
  acknowledged: number;
  unknown: number;
  /** New values of acknowledged increments, to find one acknowledged twice (a lost increment). */
  readonly ackedValues: number[];
  /** Largest value whose increment was acknowledged so far. */
  maxAcked: number;
  /** Reads that returned less than a value acknowledged before they began. */
  readonly staleReads: string[];
  readonly statuses: Map<string, number>;
}

describe('a consistent counter under kill -9 of one node in three', () => {
  const folder = temporaryFolder('ringkv-consistent-kill-');
  const configFile = join(folder.path, 'config.json');
  const env = { RINGKV_CLUSTER_SECRET: 'consistent-kill-secret-0123456789' };
  const nodes: NodeProcess[] = [];

  beforeAll(async () => {
    writeFileSync(configFile, JSON.stringify({ buckets: { counters: { consistent: true } } }));
    await startCluster(3, { folder: folder.path, nodes, env, extraArgs: ['--config', configFile], until: 'settled' });
  }, processTestTimeoutMs);

  afterAll(async () => {
    for (const node of nodes) await killNode(node);
    folder.remove();
  }, processTestTimeoutMs);

  it(
    'loses no acknowledged increment and never reads one back older',
    async () => {
      const [node1, , victim] = nodes as [NodeProcess, NodeProcess, NodeProcess];
      const created = await call(node1, 'PUT', '/kv/counters/c', { body: '0', headers: { 'if-none-match': '*' } });
      expect(created.status, created.body.toString('utf8')).toBe(204);
      // A consistent bucket answers with the key's version (a plain one does not).
      expect(created.headers['x-ringkv-version']).toBe('1');
      const tally: Tally = { acknowledged: 0, unknown: 0, ackedValues: [], maxAcked: 0, staleReads: [], statuses: new Map() };
      const count = (what: string): void => {
        tally.statuses.set(what, (tally.statuses.get(what) ?? 0) + 1);
      };
      let running = true;
      const client = async (id: number): Promise<void> => {
        for (let attempt = 0; running; attempt++) {
          // Each attempt goes to the next node, the killed one included: a refused connection is a failed attempt.
          const node = nodes[(id + attempt) % nodes.length]!;
          const floor = tally.maxAcked;
          let read;
          try {
            read = await call(node, 'GET', '/kv/counters/c');
          } catch {
            count('read: no answer');
            await new Promise((resolve) => setTimeout(resolve, 50));
            continue;
          }
          count(`read ${read.status}`);
          if (read.status !== 200) continue;
          const value = Number(read.body.toString('utf8'));
          if (value < floor) tally.staleReads.push(`client ${id} read ${value} from ${node.address} after ${floor} was acknowledged`);
          const context = String(read.headers['x-ringkv-context']);
          let written;
          try {
            written = await call(node, 'PUT', '/kv/counters/c', { body: String(value + 1), headers: { 'if-match': context } });
          } catch {
            // The request may have reached the node before it died: the outcome is unknown.
            tally.unknown += 1;
            count('put: no answer');
            continue;
          }
          count(`put ${written.status}`);
          if (written.status === 204) {
            tally.acknowledged += 1;
            tally.ackedValues.push(value + 1);
            tally.maxAcked = Math.max(tally.maxAcked, value + 1);
          } else if (written.status >= 500) {
            const applied = (written.json<{ error?: { details?: { applied?: string } } }>().error?.details?.applied ?? 'unknown') as string;
            if (applied !== 'no') tally.unknown += 1;
          }
        }
      };
      const seen = (): string => `${tally.acknowledged} acknowledged, ${tally.unknown} unknown, answers ${JSON.stringify(Object.fromEntries(tally.statuses))}`;
      const clients = Array.from({ length: clientCount }, (_, id) => client(id));
      try {
        await waitFor('increments before the kill', pollDeadlineMs, async (see) => {
          see(seen());
          return tally.acknowledged >= acksPerPhase;
        });
        await killNode(victim, 'SIGKILL');
        const atKill = tally.acknowledged;
        await waitFor('increments while a node is down', pollDeadlineMs, async (see) => {
          see(seen());
          return tally.acknowledged >= atKill + acksPerPhase;
        });
        restartNode(victim, { seeds: [node1.address], env, extraArgs: ['--config', configFile] });
        await waitHealthy(victim).catch((error: unknown) => {
          throw new Error(`the killed node did not come back: ${String(error)}; ${describeExit(victim)}; output: ${victim.output.slice(-2000)}`);
        });
        const atRestart = tally.acknowledged;
        // And until two clients raced at least once (a 412): on a fast machine they can take
        // turns for a whole run (CI, Node 22: 55 acknowledged, no 412), which tests no CAS.
        await waitFor('increments after the restart, and a lost race', pollDeadlineMs, async (see) => {
          see(seen());
          return tally.acknowledged >= atRestart + acksPerPhase && (tally.statuses.get('put 412') ?? 0) > 0;
        });
      } finally {
        running = false;
        await Promise.all(clients);
      }

      // The clients did meet the dead node (each attempt goes to the next node), and raced each other.
      expect(tally.statuses.get('read: no answer') ?? 0, seen()).toBeGreaterThan(0);
      expect(tally.statuses.get('put 412') ?? 0, seen()).toBeGreaterThan(0);
      // Every acknowledged increment wrote a value no other acknowledged increment wrote.
      const twice = tally.ackedValues.filter((value, index) => tally.ackedValues.indexOf(value) !== index);
      expect(twice, `values acknowledged twice (a lost increment); ${seen()}`).toEqual([]);
      expect(tally.staleReads, seen()).toEqual([]);
      const final = await waitFor('a final consistent read', pollDeadlineMs, async (see) => {
        const answer = await call(node1, 'GET', '/kv/counters/c');
        see(`${answer.status} ${answer.body.toString('utf8').slice(0, 200)}`);
        return answer.status === 200 ? Number(answer.body.toString('utf8')) : undefined;
      });
      expect(final, seen()).toBeGreaterThanOrEqual(tally.acknowledged);
      expect(final, seen()).toBeLessThanOrEqual(tally.acknowledged + tally.unknown);
      expect(final, seen()).toBeGreaterThanOrEqual(tally.maxAcked);
    },
    processTestTimeoutMs,
  );
});
