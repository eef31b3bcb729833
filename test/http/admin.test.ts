import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { appHarness } from './app-harness.js';

/**
 * Goal: the admin routes report health, status and Prometheus metrics and run a compaction.
 * (Peers do not use HTTP: test/contract/ covers the framed peer port.)
 */

const start = appHarness();

function errorCode(response: LightMyRequestResponse): string {
  return response.json<{ error: { code: string } }>().error.code;
}

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
    expect(text).toContain('ringkv_gossip_bytes_sent_total 123456');
    expect(text).toContain('ringkv_gossip_rounds_total 300');
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
