import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { SimCluster } from '../../src/sim/sim-cluster.js';
import { buildApp } from '../../src/http/app.js';
import { FakeKvService, testConfig } from './fake-service.js';

/** An app over a fresh fake service, with config `overrides` merged over the defaults. */
export type StartApp = (overrides?: unknown) => Promise<{ app: FastifyInstance; service: FakeKvService }>;

/**
 * The inject() tests' set-up: `start()` builds an app over a new fake service, and every app a
 * test built is closed after it.
 */
export function appHarness(): StartApp {
  const apps: FastifyInstance[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });
  return async (overrides: unknown = {}) => {
    const service = new FakeKvService(testConfig(overrides));
    const app = await buildApp({ service, config: service.config });
    apps.push(app);
    return { app, service };
  };
}

/** A real node of a simulated cluster behind its app, for a suite's inject() tests. */
export interface SimulatedApp {
  readonly cluster: SimCluster;
  readonly app: FastifyInstance;
  /** One request through inject(), run on the cluster's virtual clock (a text payload is sent as text/plain). */
  request(method: 'GET' | 'PUT' | 'DELETE' | 'POST', url: string, headers?: Record<string, string>, payload?: string): Promise<LightMyRequestResponse>;
}

/**
 * The set-up of a suite on a simulated cluster: before its tests, `members` nodes start with
 * `seed` and `config`, and the app serves the first one; after them both stop.
 */
export function simulatedApp(seed: number, members: number, config: unknown): SimulatedApp {
  let started: { cluster: SimCluster; app: FastifyInstance } | undefined;
  const get = () => {
    if (started === undefined) throw new Error('simulatedApp is used before its beforeAll ran');
    return started;
  };
  beforeAll(async () => {
    const cluster = await SimCluster.start(seed, members, config);
    started = { cluster, app: await buildApp({ service: cluster.members[0]!.node, config: cluster.config }) };
  });
  afterAll(async () => {
    await started?.app.close();
    await started?.cluster.stop();
  });
  return {
    get cluster() {
      return get().cluster;
    },
    get app() {
      return get().app;
    },
    request: async (method, url, headers = {}, payload) => {
      const { cluster, app } = get();
      return cluster.drive(
        app.inject({
          method,
          url,
          headers: payload === undefined ? headers : { 'content-type': 'text/plain', ...headers },
          ...(payload === undefined ? {} : { payload }),
        }),
      );
    },
  };
}
