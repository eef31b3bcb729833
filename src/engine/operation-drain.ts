import type { KvError } from '../util/errors.js';

/**
 * Counts the operations of one kind under way, so a leaving node can stop taking them and wait
 * for those already running (src/engine/lifecycle.ts): once `close` resolves, no operation of
 * this kind runs here and none will start (docs/CONSENSUS.md, "Watches").
 */
export class OperationDrain {
  private underWay = 0;
  private closed = false;
  private waiters: (() => void)[] = [];

  /** `refusal` is what an operation started after `close` is refused with. */
  constructor(private readonly refusal: () => KvError) {}

  /** Runs `operation` unless closed (then its refusal), counted as under way until it settles. */
  async run<T>(operation: () => Promise<T>): Promise<T> {
    if (this.closed) throw this.refusal();
    this.underWay += 1;
    try {
      return await operation();
    } finally {
      this.underWay -= 1;
      if (this.underWay === 0) {
        const waiters = this.waiters;
        this.waiters = [];
        for (const resolve of waiters) resolve();
      }
    }
  }

  /** Refuses every later operation, and resolves once those under way have settled. It stays closed. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.underWay === 0) return;
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }
}
