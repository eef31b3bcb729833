import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingClient, RingClientError } from '../../src/client/ring-client.js';
import {
  type NodeProcess,
  describeMembership,
  killNode,
  nodeStatus,
  pollDeadlineMs,
  processTestTimeoutMs,
  restartNode,
  startCluster,
  temporaryFolder,
  waitFor,
  waitForMembersUp,
  waitHealthy,
} from './processes.js';

const run = promisify(execFile);
const bin = join(import.meta.dirname, '..', '..', 'bin', 'ringkv.js');

/** `ringkv ...args` against `node`: its exit code and output. */
async function ringkv(node: NodeProcess, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [bin, ...args, '--node', node.address]).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
}

/**
 * Goal: counters and sets on three real node processes, through the client as the README shows
 * it: concurrent increments through every node sum exactly, a set's remove takes what its read
 * saw while a concurrent add survives, errors come back with their KV_* code, and updates keep
 * working with a node killed (-9), whose return brings it the same state.
 */
describe('counters and sets on a 3-node cluster of real processes', () => {
  const folder = temporaryFolder('ringkv-dt-');
  const secret = 'integration-secret-0123456789abcdef';
  const nodes: NodeProcess[] = [];
  let client: RingClient;

  beforeAll(async () => {
    const env = { RINGKV_CLUSTER_SECRET: secret };
    await startCluster(3, { folder: folder.path, nodes, env, until: 'settled' });
    client = new RingClient({ nodes: nodes.map((node) => node.address) });
  }, processTestTimeoutMs);

  afterAll(async () => {
    await client?.close();
    for (const node of nodes) await killNode(node);
    folder.remove();
  }, processTestTimeoutMs);

  it(
    'sums concurrent increments and decrements sent through every node exactly',
    async () => {
      expect(await client.dt.counter('app', 'hits')).toBeUndefined();
      const deltas = Array.from({ length: 60 }, (_, index) => (index % 3 === 0 ? -index : index + 1));
      await Promise.all(deltas.map(async (delta, index) => client.dt.increment('app', 'hits', delta, { w: 'quorum', node: nodes[index % 3]!.address })));
      const expected = deltas.reduce((sum, delta) => sum + delta, 0);
      for (const node of nodes) expect(await client.dt.counter('app', 'hits', { r: 'all', node: node.address })).toBe(expected);
    },
    processTestTimeoutMs,
  );

  it(
    'removes what a read saw, keeps an add concurrent with the remove, and refuses a remove of what the read did not see',
    async () => {
      await client.dt.updateSet('app', 'members', { add: ['ann', 'bob', 'cy'] }, { w: 'all' });
      const read = await client.dt.set('app', 'members');
      expect(read?.value).toEqual(['ann', 'bob', 'cy']);
      // After that read, another client adds 'bob' again and 'dee', without having read.
      await client.dt.updateSet('app', 'members', { add: ['bob', 'dee'] }, { node: nodes[2]!.address });
      await client.dt.updateSet('app', 'members', { remove: ['ann'], context: read!.context }, { node: nodes[0]!.address });
      // The read saw neither the new add of 'bob' nor 'dee': removing them with its context is refused, and they stay.
      for (const element of ['bob', 'dee']) {
        const refused = await client.dt.updateSet('app', 'members', { remove: [element], context: read!.context }).catch((error: unknown) => error);
        expect(refused).toBeInstanceOf(RingClientError);
        expect(refused).toMatchObject({ status: 412, code: 'KV_PRECONDITION_FAILED', outcome: 'failed' });
      }
      expect((await client.dt.set('app', 'members', { r: 'all' }))?.value).toEqual(['bob', 'cy', 'dee']);
      const again = await client.dt.set('app', 'members');
      await client.dt.updateSet('app', 'members', { remove: ['bob'], context: again!.context });
      expect((await client.dt.set('app', 'members', { r: 'all' }))?.value).toEqual(['cy', 'dee']);
      const mismatch = await client.dt.increment('app', 'members', 1).catch((error: unknown) => error);
      expect(mismatch).toMatchObject({ status: 409, code: 'KV_TYPE_MISMATCH' });
      const wrongRead = await client.dt.counter('app', 'members').catch((error: unknown) => error);
      expect(wrongRead).toMatchObject({ code: 'KV_TYPE_MISMATCH' });
    },
    processTestTimeoutMs,
  );

  it(
    'serves `ringkv counter` and `ringkv set` as the README shows them',
    async () => {
      expect(await ringkv(nodes[0]!, ['counter', 'cli', 'visits', '--incr', '5'])).toMatchObject({ code: 0, stdout: '5\n' });
      expect(await ringkv(nodes[1]!, ['counter', 'cli', 'visits', '--incr', '-7'])).toMatchObject({ code: 0, stdout: '-2\n' });
      expect(await ringkv(nodes[2]!, ['counter', 'cli', 'visits'])).toMatchObject({ code: 0, stdout: '-2\n' });
      expect(await ringkv(nodes[2]!, ['counter', 'cli', 'never'])).toMatchObject({ code: 1, stderr: 'not found\n' });
      expect(await ringkv(nodes[0]!, ['set', 'cli', 'crew', '--add', 'ann', '--add', 'bob', '--add', 'cy'])).toMatchObject({
        code: 0,
        stdout: 'ann\nbob\ncy\n',
      });
      expect(await ringkv(nodes[1]!, ['set', 'cli', 'crew', '--remove', 'bob', '--add', 'dee'])).toMatchObject({ code: 0, stdout: 'ann\ncy\ndee\n' });
      const mismatch = await ringkv(nodes[0]!, ['set', 'cli', 'visits', '--add', 'x']);
      expect(mismatch.code).toBe(1);
      expect(mismatch.stderr).toMatch(/KV_TYPE_MISMATCH/);
      expect((await ringkv(nodes[0]!, ['counter', 'cli', 'visits', '--incr', 'abc'])).code).not.toBe(0);
    },
    processTestTimeoutMs,
  );

  it(
    'keeps counting with a node killed, and the node returns to the same count',
    async () => {
      const [node1, node2, node3] = nodes as [NodeProcess, NodeProcess, NodeProcess];
      await client.dt.increment('app', 'through-a-crash', 1000, { w: 'all' });
      await killNode(node3);
      await waitFor('node 1 to see node 3 down', pollDeadlineMs, async (see) => {
        const status = await nodeStatus(node1);
        see(describeMembership(status));
        return status.members.some((member) => member.address === node3.address && member.status === 'down');
      });
      const live = new RingClient({ nodes: [node1.address, node2.address] });
      try {
        for (let index = 0; index < 20; index++) await live.dt.increment('app', 'through-a-crash', 5, { w: 2 });
        await live.dt.updateSet('app', 'while-down', { add: ['x', 'y'] }, { w: 2 });
      } finally {
        await live.close();
      }
      restartNode(node3, { seeds: [node1.address], env: { RINGKV_CLUSTER_SECRET: secret } });
      await waitHealthy(node3);
      // The client sends the r=all read to any node: each must hold node 3 up again, or it fails the read at once (r cannot be met).
      for (const node of nodes) await waitForMembersUp(node, 3);
      expect(await client.dt.counter('app', 'through-a-crash', { r: 'all' })).toBe(1100);
      // Hints (and read repair) bring node 3's own copy there: a read of it alone (r=1 there) sees the sum.
      await waitFor('node 3 to hold the count itself', pollDeadlineMs, async (see) => {
        const status = await nodeStatus(node1);
        see(`pending hints on node 1: ${status.hints.pending}`);
        return status.hints.pending === 0;
      });
      expect(await client.dt.counter('app', 'through-a-crash', { r: 'all', node: node3.address })).toBe(1100);
      expect((await client.dt.set('app', 'while-down', { r: 'all', node: node3.address }))?.value).toEqual(['x', 'y']);
    },
    processTestTimeoutMs,
  );
});
