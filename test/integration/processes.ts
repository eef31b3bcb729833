/**
 * Real ringkv node processes on 127.0.0.1 for integration tests. They need the build
 * (`npm test` runs tsc first). Tests wait for conditions with deadlines, never for fixed times.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';

const script = join(import.meta.dirname, '..', '..', 'bin', 'ringkv.js');

/** A running (or stopped) node process. */
export interface NodeProcess {
  readonly port: number;
  readonly address: string;
  readonly dataDir: string;
  child: ChildProcess | undefined;
  output: string;
}

/** A temporary folder, removed by the returned function. */
export function temporaryFolder(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Starts `ringkv start` as a child process. */
export function startNode(port: number, dataDir: string, options: { seeds?: string[]; env?: Record<string, string>; extraArgs?: string[] } = {}): NodeProcess {
  const node: NodeProcess = { port, address: `127.0.0.1:${port}`, dataDir, child: undefined, output: '' };
  launch(node, options);
  return node;
}

function launch(node: NodeProcess, options: { seeds?: string[]; env?: Record<string, string>; extraArgs?: string[] }): void {
  const args = [script, 'start', '--host', '127.0.0.1', '--port', String(node.port), '--data', node.dataDir, '--log-level', 'warn'];
  if (options.seeds !== undefined && options.seeds.length > 0) args.push('--seeds', options.seeds.join(','));
  args.push(...(options.extraArgs ?? []));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  const keep = (chunk: Buffer): void => {
    node.output = (node.output + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  node.child = child;
}

/** Restarts a stopped node on the same port and data directory. */
export function restartNode(node: NodeProcess, options: { seeds?: string[]; env?: Record<string, string>; extraArgs?: string[] } = {}): void {
  launch(node, options);
}

/** kill -9, and waits until the process is gone. */
export async function killNode(node: NodeProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  const child = node.child;
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  await exited;
  node.child = undefined;
}

/** Polls `condition` until it holds or `deadlineMs` passes (then throws `what`; a function is asked then, so it can show the latest node output). */
export async function waitFor<T>(what: string | (() => string), deadlineMs: number, condition: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await condition();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const described = typeof what === 'function' ? what() : what;
  throw new Error(`timed out after ${deadlineMs} ms waiting for ${described}${lastError === undefined ? '' : ` (last error: ${String(lastError)})`}`);
}

/** An HTTP answer, body as bytes. */
export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  json<T = unknown>(): T;
}

/** One HTTP request to a node (5 s timeout). */
export async function call(
  node: NodeProcess | string,
  method: 'GET' | 'PUT' | 'DELETE' | 'POST',
  path: string,
  options: { body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const address = typeof node === 'string' ? node : node.address;
  const response = await request(`http://${address}${path}`, {
    method,
    headers: options.headers,
    body: options.body,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const body = Buffer.from(await response.body.arrayBuffer());
  return { status: response.statusCode, headers: response.headers, body, json: <T>() => JSON.parse(body.toString('utf8')) as T };
}

/** Waits until the node answers /health. */
export async function waitHealthy(node: NodeProcess, deadlineMs = 20_000): Promise<void> {
  await waitFor(() => `${node.address} to answer /health (output: ${node.output.slice(-500)})`, deadlineMs, async () => (await call(node, 'GET', '/health')).status === 200);
}

/** The JSON of /status. */
export async function nodeStatus(node: NodeProcess): Promise<{
  node: { id: string };
  members: { id: string; address: string; status: string }[];
  hints: { pending: number };
  ring: { members: string[]; next?: string[] | null } | null;
}> {
  return (await call(node, 'GET', '/status')).json();
}
