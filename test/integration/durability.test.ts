import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type NodeProcess,
  call,
  freePorts,
  killNode,
  pollDeadlineMs,
  processTestTimeoutMs,
  restartNode,
  startNode,
  temporaryFolder,
  waitFor,
  waitHealthy,
} from './processes.js';

describe('durability: acknowledged writes survive kill -9 of the node', () => {
  const folder = temporaryFolder('ringkv-durability-');
  let node: NodeProcess | undefined;
  beforeAll(async () => {
    node = startNode((await freePorts(1))[0]!, folder.path);
  }, processTestTimeoutMs);
  afterAll(async () => {
    if (node !== undefined) await killNode(node);
    folder.remove();
  }, processTestTimeoutMs);

  it(
    'reads back every acknowledged write after a restart on the same --data',
    async () => {
      const node = startedNode();
      await waitHealthy(node);
      const acknowledged = new Map<string, string>();
      let writing = true;
      // Four concurrent writers keep writing until the node is killed under them.
      const writer = async (id: number): Promise<void> => {
        for (let index = 0; writing; index++) {
          const key = `w${id}-${index}`;
          const value = `value-${id}-${index}-${'x'.repeat(index % 50)}`;
          try {
            const answer = await call(node, 'PUT', `/kv/durable/${key}`, { body: value });
            if (answer.status === 204) acknowledged.set(key, value);
          } catch {
            return;
          }
        }
      };
      const writers = [0, 1, 2, 3].map((id) => writer(id));
      await waitFor('300 acknowledged writes before the kill', pollDeadlineMs, async (see) => {
        see(`${acknowledged.size} acknowledged`);
        return acknowledged.size >= 300;
      });
      await killNode(node, 'SIGKILL');
      writing = false;
      await Promise.all(writers);
      expect(acknowledged.size).toBeGreaterThanOrEqual(300);

      restartNode(node);
      await waitHealthy(node);
      const missing: string[] = [];
      for (const [key, value] of acknowledged) {
        const answer = await call(node, 'GET', `/kv/durable/${key}`);
        if (answer.status !== 200 || answer.body.toString('utf8') !== value) missing.push(`${key}: ${answer.status}`);
      }
      expect(missing).toEqual([]);
    },
    processTestTimeoutMs,
  );

  function startedNode(): NodeProcess {
    if (node === undefined) throw new Error('the node did not start: see beforeAll');
    return node;
  }
});
