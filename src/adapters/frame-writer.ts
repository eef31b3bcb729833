import type { Socket } from 'node:net';
import { type FrameType, encodeFrameHeader } from '../core/wire/frames.js';

/**
 * Writes frames to a socket. The frames written in one event-loop turn leave in one write
 * (the socket is corked until the next tick), so a burst of small requests or replies costs
 * one system call, not two per frame; a payload is never copied into a combined buffer.
 */
export class FrameWriter {
  private corked = false;

  constructor(private readonly socket: Socket) {}

  /** Queues one frame; false when the socket's buffer is over its high-water mark (wait for 'drain'). */
  write(type: FrameType, requestId: number, deadlineMs: number, payload: Uint8Array): boolean {
    if (this.socket.destroyed) return false;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(encodeFrameHeader(type, requestId, deadlineMs, payload.byteLength));
    return payload.byteLength === 0 ? !this.socket.writableNeedDrain : this.socket.write(payload);
  }
}
