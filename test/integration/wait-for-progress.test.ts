import { describe, expect, it } from 'vitest';
import { type ProgressReading, freePorts, waitFor, waitForProgress } from './processes.js';

/**
 * Goal: `waitForProgress` fails only on a stall measured in the system's own rounds, so a slow
 * system that keeps progressing is waited for, and a stuck one fails with what it saw.
 */
describe('waitForProgress', () => {
  it('waits for a system that progresses one unit every few rounds, for as many rounds as it takes', async () => {
    let round = 0;
    const reading = await waitForProgress('slow work', { stallRounds: 5, capMs: 60_000, pollMs: 0 }, async (): Promise<ProgressReading> => {
      round += 1;
      const units = Math.floor(round / 4);
      return { done: units >= 50, progress: units, rounds: round, seen: `${units} units` };
    });
    expect(reading.rounds).toBe(200);
  });

  it('fails, naming what it saw, when rounds go by without progress', async () => {
    let round = 0;
    const stuck = waitForProgress('stuck work', { stallRounds: 5, capMs: 60_000, pollMs: 0 }, async () => {
      round += 1;
      return { done: false, progress: 7, rounds: round, seen: `7 units at round ${round}` };
    });
    await expect(stuck).rejects.toThrow(/stuck work: no progress over 5 rounds .*last saw 7 units at round 6/);
  });

  it('counts readings that throw as no change, and names the last error when the cap ends the wait', async () => {
    const failing = waitForProgress('unreachable work', { stallRounds: 5, capMs: 50, pollMs: 5 }, async () => {
      throw new Error('connection refused');
    });
    await expect(failing).rejects.toThrow(
      /unreachable work: gave up after the last-resort cap of 50 ms; last saw nothing \(last error: Error: connection refused\)/,
    );
  });
});

describe('waitFor and freePorts', () => {
  it('fails at its deadline naming the last thing the condition saw', async () => {
    let polls = 0;
    const never = waitFor('a key count of 10', 50, async (see) => {
      polls += 1;
      see({ keys: polls });
      return false;
    });
    await expect(never).rejects.toThrow(/timed out after 50 ms waiting for a key count of 10; last saw \{"keys":\d+\}/);
  });

  it('hands out distinct ports', async () => {
    const ports = await freePorts(5);
    expect(new Set(ports).size).toBe(5);
    for (const port of ports) expect(port).toBeGreaterThan(0);
  });
});
