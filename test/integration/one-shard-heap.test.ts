import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/cli/load-config.js';
import { shardOldSpaceMiB, shardSemiSpaceMiB } from '../../src/cli/shards.js';
import { type NodeProcess, call, freePorts, killNode, pollDeadlineMs, processTestTimeoutMs, startNode, temporaryFolder, waitFor } from './processes.js';

/**
 * Goal: a node of one shard (`ringkv start --shards 1`, the layout of `ringkv cluster` and
 * `npm start`) runs with the same V8 heap bounds as each shard of a sharded node
 * (`shardExecArgv` in `src/cli/shards.ts`): V8 otherwise sizes the heap by the host's memory and
 * such a node peaked at 328-349 MiB RSS at only 10,000 keys (bench/RESULTS.md). A bound the
 * operator gives in NODE_OPTIONS still wins.
 */

interface ProcessStatus {
  readonly process: { readonly pid: number; readonly heapSizeLimitBytes: number };
}

const mebibyte = 2 ** 20;

describe('the V8 heap limit of a one-shard node', () => {
  const folder = temporaryFolder('ringkv-one-shard-heap-');
  const nodes: NodeProcess[] = [];
  afterAll(async () => {
    for (const node of nodes) await killNode(node);
    folder.remove();
  }, processTestTimeoutMs);

  /** Starts a one-shard node and answers the heap limit its /status reports. */
  async function heapLimitOf(name: string, env: Record<string, string> = {}): Promise<number> {
    const [port] = await freePorts(1);
    const node = startNode(port!, `${folder.path}/${name}`, { env });
    nodes.push(node);
    const status = await waitFor(
      () => `${node.address} (${name}) to answer /status (output: ${node.output.slice(-500)})`,
      pollDeadlineMs,
      async (see) => {
        const answer = await call(node, 'GET', '/status');
        see(`status ${answer.status}`);
        return answer.status === 200 ? answer.json<ProcessStatus>() : undefined;
      },
    );
    await killNode(node);
    return status.process.heapSizeLimitBytes;
  }

  it(
    "is the shard's bound: the old generation's plus its semi-spaces' young generation, not V8's default by the host's memory",
    async () => {
      const oldSpaceMiB = shardOldSpaceMiB(loadConfig({}, {}));
      const limitMiB = (await heapLimitOf('default')) / mebibyte;
      // V8's limit is the old generation's bound plus the young generation's (three semi-spaces' worth).
      expect(limitMiB).toBeGreaterThanOrEqual(oldSpaceMiB);
      expect(limitMiB).toBeLessThanOrEqual(oldSpaceMiB + 4 * shardSemiSpaceMiB);
    },
    processTestTimeoutMs,
  );

  it(
    "is the operator's when NODE_OPTIONS names --max-old-space-size",
    async () => {
      const limitMiB = (await heapLimitOf('operator', { NODE_OPTIONS: '--max-old-space-size=600' })) / mebibyte;
      expect(limitMiB).toBeGreaterThanOrEqual(600);
      expect(limitMiB).toBeLessThan(1000);
    },
    processTestTimeoutMs,
  );
});
