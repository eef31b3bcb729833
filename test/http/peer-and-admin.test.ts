import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { decodeReplyBatch, encodeRequestBatch } from '../../src/core/wire/codec.js';
import type { PeerRequest } from '../../src/core/wire/messages.js';
import { peerBodyLimitBytes } from '../../src/http/peer-route.js';
import { fakeSecret, testConfig } from './fake-service.js';
import { appHarness } from './app-harness.js';

/**
 * Goal: the peer route admits only holders of the cluster secret and answers a binary batch
 * with one reply per request (failures included); the admin routes report health, status and
 * Prometheus metrics and run a compaction.
 */

const start = appHarness();

function errorCode(response: LightMyRequestResponse): string {
  return response.json<{ error: { code: string } }>().error.code;
}

const object = {
  clock: { other: 1 },
  siblings: [{ dot: { node: 'other', counter: 1 }, value: Uint8Array.from([0, 1, 2, 255]), contentType: 'application/octet-stream', lastModifiedMs: 1_000, tombstone: false }],
};

function peerPost(body: Buffer, secret?: string) {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  if (secret !== undefined) headers['x-ringkv-secret'] = secret;
  return { method: 'POST' as const, url: '/internal/v1/peer', headers, payload: body };
}

describe('the peer route', () => {
  it('refuses a request without the secret with 401 and a wrong secret with 403, before decoding the body', async () => {
    const { app, service } = await start();
    const garbage = Buffer.from([255, 255, 255]);
    const missing = await app.inject(peerPost(garbage));
    expect(missing.statusCode).toBe(401);
    expect(errorCode(missing)).toBe('KV_UNAUTHORIZED');
    const wrong = await app.inject(peerPost(garbage, 'not-the-secret'));
    expect(wrong.statusCode).toBe(403);
    expect(errorCode(wrong)).toBe('KV_FORBIDDEN');
    expect(service.calls).toEqual([]);
  });

  it('answers a batch with one reply per request, in order, turning failures into error replies', async () => {
    const { app, service } = await start();
    const requests: PeerRequest[] = [
      { type: 'replica-put', bucket: 'demo', key: 'k', object, mode: 'siblings', sync: true },
      { type: 'replica-get', bucket: 'demo', key: 'k' },
      { type: 'replica-get', bucket: 'demo', key: 'absent' },
      { type: 'gossip', state: { members: [] } },
      { type: 'control', operation: 'unknown', payload: null },
    ];
    const response = await app.inject(peerPost(encodeRequestBatch(requests), fakeSecret));
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe('application/octet-stream');
    const replies = decodeReplyBatch(response.rawPayload);
    expect(replies).toHaveLength(5);
    expect(replies[0]).toEqual({ type: 'replica-put-reply', durable: true });
    expect(replies[1]!.type).toBe('replica-get-reply');
    const stored = (replies[1] as unknown as { object: typeof object }).object;
    expect(stored.clock).toEqual({ other: 1 });
    expect(Buffer.from(stored.siblings[0]!.value)).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(replies[2]).toEqual({ type: 'replica-get-reply', object: null });
    expect(replies[3]).toEqual({ type: 'error', code: 'KV_NOT_READY', message: 'the fake does not gossip' });
    expect(replies[4]).toMatchObject({ type: 'error', code: 'KV_INTERNAL' });
    expect((replies[4] as { message: string }).message).not.toContain('the fake cannot handle');
    expect(service.callsOf('handlePeer')).toHaveLength(5);
  });

  it('refuses a malformed batch from an authenticated peer with 400 KV_BAD_REQUEST', async () => {
    const { app, service } = await start();
    const response = await app.inject(peerPost(Buffer.from([255, 255, 255]), fakeSecret));
    expect(response.statusCode).toBe(400);
    expect(errorCode(response)).toBe('KV_BAD_REQUEST');
    expect(service.callsOf('handlePeer')).toEqual([]);
  });

  it('accepts a batch bigger than one value, up to the peer limit', async () => {
    const { app } = await start({ limits: { maxValueBytes: 1000 } });
    expect(peerBodyLimitBytes(testConfig({ limits: { maxValueBytes: 1000 } }))).toBeGreaterThanOrEqual(64 * 1024 * 1024);
    const big = { ...object, siblings: [{ ...object.siblings[0]!, value: new Uint8Array(900) }] };
    const requests: PeerRequest[] = Array.from({ length: 5 }, (_, index) => ({ type: 'replica-put', bucket: 'demo', key: `k${index}`, object: big, mode: 'siblings', sync: false }));
    const response = await app.inject(peerPost(encodeRequestBatch(requests), fakeSecret));
    expect(response.statusCode).toBe(200);
    expect(decodeReplyBatch(response.rawPayload)).toHaveLength(5);
  });
});

describe('the admin routes', () => {
  it('answers /health with status ok', async () => {
    const { app } = await start();
    const response = await app.inject({ method: 'GET', url: '/health' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok' });
  });

  it('answers /status with the service status as JSON', async () => {
    const { app, service } = await start();
    const response = await app.inject({ method: 'GET', url: '/status' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual(await service.status());
  });

  it('runs a compaction on POST /admin/compact', async () => {
    const { app, service } = await start();
    const response = await app.inject({ method: 'POST', url: '/admin/compact' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ compacted: true });
    expect(service.compactions).toBe(1);
  });

  it("compacts one partition's key range with ?partition=N, and refuses a partition the ring does not have", async () => {
    const { app, service } = await start();
    const response = await app.inject({ method: 'POST', url: '/admin/compact?partition=3' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ compacted: true, partition: 3 });
    const [start3, end3] = service.callsOf('compact')[0] as [Buffer, Buffer];
    expect(start3.readUInt32BE(0)).toBe(3 * 2 ** 24);
    expect(end3.readUInt32BE(0)).toBe(4 * 2 ** 24);
    for (const bad of ['256', '-1', 'abc', '1.5']) {
      const refused = await app.inject({ method: 'POST', url: `/admin/compact?partition=${bad}` });
      expect(refused.statusCode, bad).toBe(400);
      expect(errorCode(refused)).toBe('KV_BAD_PARAMETER');
    }
  });

  it('maps a failed compaction to its error', async () => {
    const { app, service } = await start();
    service.failNextWith(new Error('disk on fire'));
    const response = await app.inject({ method: 'POST', url: '/admin/compact' });
    expect(response.statusCode).toBe(500);
    expect(errorCode(response)).toBe('KV_INTERNAL');
  });

  it('exposes request counters, latency histograms and node gauges on /metrics', async () => {
    const { app, service } = await start();
    await app.inject({ method: 'PUT', url: '/kv/demo/k', payload: 'x' });
    await app.inject({ method: 'PUT', url: '/kv/demo/k', payload: 'y' });
    await app.inject({ method: 'GET', url: '/kv/demo/k' });
    await app.inject({ method: 'GET', url: '/kv/demo/missing' });
    await app.inject({ method: 'GET', url: '/kv/demo/k?local=true' });
    await app.inject({ method: 'GET', url: '/kv/demo/k?r=0' });
    await app.inject({ method: 'DELETE', url: '/kv/demo/k' });

    const response = await app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain/);
    const text = response.body;
    expect(text).toContain('ringkv_requests_total{operation="put",status="204"} 2');
    expect(text).toContain('ringkv_requests_total{operation="get",status="300"} 1');
    expect(text).toContain('ringkv_requests_total{operation="get",status="404"} 1');
    expect(text).toContain('ringkv_requests_total{operation="get",status="400"} 1');
    expect(text).toContain('ringkv_requests_total{operation="get_local",status="300"} 1');
    expect(text).toContain('ringkv_requests_total{operation="delete",status="204"} 1');
    expect(text).toContain('ringkv_request_duration_seconds_count{operation="put"} 2');
    expect(text).toContain('ringkv_request_duration_seconds_bucket{le="+Inf",operation="get"} 3');
    expect(text).toContain('ringkv_keys_stored 42');
    expect(text).toContain('ringkv_hints_pending 3');
    expect(text).toContain('ringkv_hints_delivered_total 11');
    expect(text).toContain('ringkv_hints_expired_total 1');
    expect(text).toContain('ringkv_hints_dropped_total 4');
    expect(text).toContain('ringkv_members{status="up"} 1');
    expect(text).toContain('ringkv_members{status="down"} 1');
    expect(text).toContain('ringkv_members{status="joining"} 0');
    expect(text).toContain('ringkv_partitions_owned 256');
    expect(text).toContain('ringkv_storage_bytes 86016');
    expect(text).toContain('ringkv_storage_level_files{level="1"} 5');
    expect(text).toContain('ringkv_storage_level_bytes{level="0"} 4096');
    expect(text).toContain('ringkv_storage_compactions_total 7');
    expect(service.callsOf('status')).toHaveLength(1);

    // A second scrape does not double the mirrored totals.
    expect((await app.inject({ method: 'GET', url: '/metrics' })).body).toContain('ringkv_hints_delivered_total 11');
  });

  it('keeps each app’s metrics apart', async () => {
    const first = await start();
    const second = await start();
    await first.app.inject({ method: 'GET', url: '/kv/demo/k' });
    expect((await second.app.inject({ method: 'GET', url: '/metrics' })).body).not.toContain('operation="get"');
  });
});
