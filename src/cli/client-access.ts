import type { RingClientOptions } from '../client/ring-client.js';
import type { NodeConfig } from '../config/schema.js';
import { readSettingFile } from '../util/setting-file.js';

/** How the command line reaches nodes: a bearer token and a CA, when the cluster uses them. */
export type ClientAccess = Pick<RingClientOptions, 'token' | 'tls'>;

/**
 * The access settings of `ringkv get|put|status|...` from the environment: RINGKV_TOKEN (a token
 * from the cluster's auth.tokens) and RINGKV_CA_FILE (the CA of a TLS cluster; bare host:port
 * nodes are then https). Environment variables rather than flags, so a token never shows in `ps`.
 */
export function clientAccessFromEnvironment(environment: NodeJS.ProcessEnv): ClientAccess {
  const token = environment.RINGKV_TOKEN;
  const caFile = environment.RINGKV_CA_FILE;
  return {
    ...(token === undefined || token === '' ? {} : { token }),
    ...(caFile === undefined || caFile === '' ? {} : { tls: { ca: readSettingFile(caFile, 'RINGKV_CA_FILE') } }),
  };
}

/**
 * How `ringkv cluster` polls the nodes it starts: over https with their CA when the config turns
 * TLS on, and with RINGKV_TOKEN or else the config's first token (any role may read /status).
 */
export function clientAccessForCluster(config: NodeConfig, environment: NodeJS.ProcessEnv): ClientAccess {
  const fromEnvironment = clientAccessFromEnvironment(environment);
  const token = fromEnvironment.token ?? (config.auth.enabled ? config.auth.tokens[0]?.token : undefined);
  return {
    ...(token === undefined ? {} : { token }),
    ...(config.tls.enabled ? { tls: { ca: readSettingFile(config.tls.caFile, "config field 'tls.caFile'") } } : {}),
  };
}
