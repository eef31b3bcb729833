// A ringkv client that runs inside a test host's network namespace (`ip netns exec ... node
// client-agent.mjs`), since the test process itself has no route into the namespaces. It reads
// one JSON request per line on stdin and answers one JSON line on stdout, using the client the
// README shows (dist/, built by `npm test`). It exits when stdin closes.
import { createInterface } from 'node:readline';
import { RingClient, RingClientError } from '../../dist/src/client/index.js';

const clients = new Map();
const clientFor = (node) => {
  let client = clients.get(node);
  if (client === undefined) {
    // One node per client and one attempt: the test chooses the node, and a failure is reported, not hidden.
    client = new RingClient({ nodes: [node], maxAttempts: 1, httpTimeoutMs: 8000 });
    clients.set(node, client);
  }
  return client;
};

async function handle(request) {
  const client = clientFor(request.node);
  switch (request.op) {
    case 'put': {
      const result = await client.put(request.bucket, request.key, request.value, { w: request.w, timeoutMs: request.timeoutMs, context: request.context });
      return { context: result.context };
    }
    case 'get': {
      const result = await client.get(request.bucket, request.key, { r: request.r, timeoutMs: request.timeoutMs });
      return { found: result.found, context: result.context, values: result.siblings.map((sibling) => sibling.value.toString('utf8')) };
    }
    case 'status':
      return { status: await client.status() };
    default:
      throw new Error(`unknown op ${request.op}`);
  }
}

const lines = createInterface({ input: process.stdin });
const pending = new Set();
lines.on('line', (line) => {
  const request = JSON.parse(line);
  const work = handle(request)
    .then((result) => ({ id: request.id, ok: true, ...result }))
    .catch((error) => ({
      id: request.id,
      ok: false,
      code: error instanceof RingClientError ? error.code : 'AGENT_ERROR',
      outcome: error instanceof RingClientError ? error.outcome : 'unknown',
      message: String(error?.message ?? error).slice(0, 500),
    }))
    .then((reply) => process.stdout.write(`${JSON.stringify(reply)}\n`));
  pending.add(work);
  work.finally(() => pending.delete(work)).catch(() => undefined);
});
lines.on('close', () => {
  Promise.all(pending)
    .then(() => Promise.all([...clients.values()].map((client) => client.close())))
    .catch((error) => console.error(error))
    .finally(() => process.exit(0));
});
