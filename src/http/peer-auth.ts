import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * The cluster secret that node-to-node HTTP routes require (the framed transport proves it in its
 * handshake instead). Kept as a SHA-256 digest, so every comparison takes the same time whatever
 * was presented; the secret never appears in a log line or an error message.
 */
export class PeerSecret {
  private readonly digest: Buffer;

  constructor(secret: string) {
    this.digest = createHash('sha256').update(secret).digest();
  }

  /** True when the presented secret equals the cluster's, compared in constant time. */
  matches(presented: string | undefined): boolean {
    if (presented === undefined) return false;
    return timingSafeEqual(createHash('sha256').update(presented).digest(), this.digest);
  }
}
