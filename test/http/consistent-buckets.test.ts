import { describe, expect, it } from 'vitest';
import { simulatedApp } from './app-harness.js';

/**
 * Goal: a consistent bucket through the HTTP API exactly as the README shows it, on a real node
 * of a simulated cluster: every answer carries x-ringkv-version (and the same number as its
 * x-ringkv-context), If-None-Match: * and If-Match: <context> are compare-and-set with 412
 * KV_PRECONDITION_FAILED and the version judged on, a delete grows the version too, quorum
 * parameters are refused, and with no majority of the key's primaries reachable the answer is
 * 503 KV_INSUFFICIENT_REPLICAS saying nothing happened (never a fallback, never a hint).
 */
describe('consistent buckets over HTTP', () => {
  const simulated = simulatedApp(22, 3, { buckets: { locks: { consistent: true } } });
  const { request } = simulated;

  it('PUT, GET and DELETE carry a version that grows with every write; If-None-Match and If-Match are compare-and-set', async () => {
    const created = await request('PUT', '/kv/locks/leader', { 'if-none-match': '*' }, 'node-a');
    expect(created.statusCode).toBe(204);
    expect(created.headers['x-ringkv-version']).toBe('1');
    const again = await request('PUT', '/kv/locks/leader', { 'if-none-match': '*' }, 'node-b');
    expect(again.statusCode).toBe(412);
    expect(again.json()).toMatchObject({ error: { code: 'KV_PRECONDITION_FAILED' } });
    expect(again.headers['x-ringkv-version'], 'a refusal says the version it was judged on').toBe('1');

    const read = await request('GET', '/kv/locks/leader');
    expect(read.statusCode).toBe(200);
    expect(read.body).toBe('node-a');
    expect(read.headers['content-type']).toMatch(/^text\/plain/);
    expect(read.headers['x-ringkv-version']).toBe('1');
    const context = String(read.headers['x-ringkv-context']);
    expect(context, 'the context of a consistent read is its version').toBe('1');

    const replaced = await request('PUT', '/kv/locks/leader', { 'if-match': context }, 'node-c');
    expect(replaced.statusCode).toBe(204);
    expect(replaced.headers['x-ringkv-version']).toBe('2');
    const stale = await request('PUT', '/kv/locks/leader', { 'if-match': context }, 'node-d');
    expect(stale.statusCode).toBe(412);
    expect(stale.headers['x-ringkv-version']).toBe('2');

    expect((await request('DELETE', '/kv/locks/leader', { 'if-match': '1' })).statusCode, 'a conditional delete of an old version is refused').toBe(412);
    const deleted = await request('DELETE', '/kv/locks/leader', { 'if-match': '2' });
    expect(deleted.statusCode).toBe(204);
    expect(deleted.headers['x-ringkv-version'], 'a delete is a write: the fencing token grows').toBe('3');
    const gone = await request('GET', '/kv/locks/leader');
    expect(gone.statusCode).toBe(404);
    expect(gone.headers['x-ringkv-version']).toBe('3');
    expect((await request('PUT', '/kv/locks/leader', { 'if-none-match': '*' }, 'node-e')).headers['x-ringkv-version']).toBe('4');
  });

  it('refuses quorum parameters, a malformed If-Match, and the plain paths of a consistent bucket', async () => {
    const quorum = await request('PUT', '/kv/locks/k?w=all', {}, 'x');
    expect(quorum.statusCode).toBe(400);
    expect(quorum.json()).toMatchObject({ error: { code: 'KV_BAD_PARAMETER' } });
    expect((await request('GET', '/kv/locks/k?local=true')).json()).toMatchObject({ error: { code: 'KV_BAD_PARAMETER' } });
    expect((await request('PUT', '/kv/locks/k', { 'if-match': 'c3.abc' }, 'x')).json()).toMatchObject({ error: { code: 'KV_BAD_CONTEXT' } });
    const counter = await simulated.cluster.drive(simulated.app.inject({ method: 'POST', url: '/dt/locks/c', payload: { type: 'counter', increment: 1 } }));
    expect(counter.json(), 'a /dt update would bypass the Paxos rounds').toMatchObject({ error: { code: 'KV_CONSISTENT_BUCKET' } });
    expect((await request('GET', '/kv/locks/k?timeout_ms=500')).statusCode, 'timeout_ms is the one parameter').toBe(404);
  });

  it('answers 503 KV_INSUFFICIENT_REPLICAS, applied "no", when a majority of the primaries is unreachable', async () => {
    const [self, ...others] = simulated.cluster.members;
    simulated.cluster.network.partition([[self!.address], others.map((member) => member.address)]);
    try {
      const refused = await request('PUT', '/kv/locks/cut-off', {}, 'x');
      expect([503, 504]).toContain(refused.statusCode);
      expect(refused.json()).toMatchObject({
        error: { code: refused.statusCode === 503 ? 'KV_INSUFFICIENT_REPLICAS' : 'KV_TIMEOUT', details: { applied: 'no' } },
      });
      expect(refused.json().error.message).toMatch(/did not happen/);
    } finally {
      simulated.cluster.network.heal();
    }
  });
});
