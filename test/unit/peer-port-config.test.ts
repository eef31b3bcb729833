import { describe, expect, it } from 'vitest';
import { testConfig } from '../http/fake-service.js';

/** Goal: the peer port sits 1000 above the HTTP port by default, and one beyond 65535 stops the node naming the field. */
describe('peer port settings', () => {
  it('defaults to a peer port offset of 1000', () => {
    expect(testConfig()).toMatchObject({ peerPortOffset: 1000 });
    expect(testConfig({ peerPortOffset: 7 })).toMatchObject({ peerPortOffset: 7 });
  });

  it('refuses a peer port beyond 65535', () => {
    expect(() => testConfig({ port: 65_000 })).toThrow(/'peerPortOffset' must be small enough/);
  });
});
