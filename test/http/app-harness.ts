import type { FastifyInstance } from 'fastify';
import { afterEach } from 'vitest';
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
