import { describe, expect, it } from 'vitest';
import { testConfig } from '../http/fake-service.js';

/** Goal: the peer transport settings default to framed with the peer port 1000 above the HTTP port, and a bad choice stops the node naming the field. */
describe('peer transport settings', () => {
  it('defaults to the framed transport and a peer port offset of 1000', () => {
    expect(testConfig()).toMatchObject({ peerTransport: 'framed', peerPortOffset: 1000 });
    expect(testConfig({ peerTransport: 'http' })).toMatchObject({ peerTransport: 'http' });
    expect(testConfig({ peerTransport: 'framed', peerPortOffset: 7 })).toMatchObject({ peerTransport: 'framed', peerPortOffset: 7 });
  });

  it('refuses an unknown transport and a peer port beyond 65535', () => {
    expect(() => testConfig({ peerTransport: 'carrier-pigeon' })).toThrow(/'peerTransport' must be one of http, framed/);
    expect(() => testConfig({ port: 65_000 })).toThrow(/'peerPortOffset' must be small enough/);
    // The HTTP transport has no peer port, so a high HTTP port is fine there.
    expect(testConfig({ peerTransport: 'http', port: 65_000 }).port).toBe(65_000);
  });
});
