import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type NodeConfig } from '../config/schema.js';
import { checkFieldValues, checkKnownKeys, configDefaults, mergeConfig, validateConfig } from '../config/validate.js';
import { configFromEnvironment } from '../config/environment.js';
import { KvError } from '../util/errors.js';

/**
 * Building a node's config from its sources. This module is light on purpose (no fastify, pino
 * or LevelDB): `ringkv cluster` and `ringkv config check` need the config without the node.
 */

/** The flags of `ringkv start` that set config, as commander parsed them. */
export interface ConfigFlags {
  readonly port?: string | number;
  readonly host?: string;
  readonly listen?: string;
  readonly advertise?: string;
  readonly data?: string;
  readonly seeds?: string;
  readonly config?: string;
  readonly logLevel?: string;
  readonly peerMap?: string;
  readonly placementHost?: string;
  readonly zone?: string;
}

/** The folder that holds package.json and bin/ringkv.js (above this file, in src/ or dist/src/). */
export function packageRoot(): string {
  let folder = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(folder, 'package.json')) || !existsSync(join(folder, 'bin', 'ringkv.js'))) {
    const parent = dirname(folder);
    if (parent === folder) throw new KvError('KV_BAD_CONFIG', 'cannot find bin/ringkv.js above the ringkv code; reinstall ringkv');
    folder = parent;
  }
  return folder;
}

const listText = (text: string): string[] =>
  text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);

function parsePeerMap(text: string): Record<string, string> {
  const map: Record<string, string> = {};
  for (const pair of listText(text)) {
    const [from, to] = pair.split('=');
    if (from === undefined || to === undefined) throw new KvError('KV_BAD_CONFIG', `--peer-map entries are ADDRESS=DIAL_ADDRESS, got '${pair}'`);
    map[from] = to;
  }
  return map;
}

/** Reads a JSON config file; an unknown key in it is refused here, so the message names the file. */
export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new KvError('KV_BAD_CONFIG', `cannot read config file ${file}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new KvError('KV_BAD_CONFIG', `config file ${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new KvError('KV_BAD_CONFIG', `config file ${file} must hold a JSON object`);
  checkKnownKeys(parsed, `config file ${file}`);
  return parsed;
}

/**
 * A port given on the command line, checked here so the message shows what was typed (after
 * Number() a typo is NaN, which the schema can only show as null).
 */
export function portNumber(flag: string, text: string): number {
  const port = /^[0-9]{1,5}$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!(port >= 1 && port <= 65_535)) throw new KvError('KV_BAD_CONFIG', `${flag} must be a port number from 1 to 65535, got '${text.slice(0, 40)}'`);
  return port;
}

/** The config the flags of `ringkv start` set. */
function configFromFlags(flags: ConfigFlags): Record<string, unknown> {
  const fromFlags: Record<string, unknown> = {};
  if (flags.port !== undefined) fromFlags.port = portNumber('--port', String(flags.port));
  if (flags.host !== undefined) fromFlags.host = flags.host;
  if (flags.listen !== undefined) fromFlags.listen = flags.listen;
  if (flags.advertise !== undefined) fromFlags.advertise = flags.advertise;
  if (flags.data !== undefined) fromFlags.dataDir = flags.data;
  if (flags.seeds !== undefined) fromFlags.seeds = listText(flags.seeds);
  if (flags.logLevel !== undefined) fromFlags.logLevel = flags.logLevel;
  if (flags.peerMap !== undefined) fromFlags.peerDialOverrides = parsePeerMap(flags.peerMap);
  if (flags.placementHost !== undefined || flags.zone !== undefined) {
    fromFlags.placement = {
      ...(flags.placementHost === undefined ? {} : { host: flags.placementHost }),
      ...(flags.zone === undefined ? {} : { zone: flags.zone }),
    };
  }
  return fromFlags;
}

/** Checks each field of `candidate` on its own, naming `source` in the message when one is refused. */
function validateFrom(candidate: unknown, source: string): void {
  try {
    checkFieldValues(candidate);
  } catch (error) {
    if (error instanceof KvError) throw new KvError(error.code, `${source}: ${error.message}`);
    throw error;
  }
}

/**
 * Builds the config: the schema's defaults, then --config FILE (or RINGKV_CONFIG), then RINGKV_*
 * variables, then flags; validated. Each source is validated over the ones below it before the
 * next is laid on, so a bad value in the file stops the node even where a variable or a flag
 * overrides that field (it would bite the day the override goes), and the message names the file.
 */
export function loadConfig(flags: ConfigFlags, environment: Readonly<Record<string, string | undefined>>): NodeConfig {
  let merged = configDefaults();
  const file = flags.config ?? environment.RINGKV_CONFIG;
  if (file !== undefined && file !== '') {
    merged = mergeConfig(merged, readConfigFile(file));
    validateFrom(merged, `config file ${file}`);
  }
  const fromEnvironment = configFromEnvironment(environment);
  if (Object.keys(fromEnvironment as object).length > 0) {
    merged = mergeConfig(merged, fromEnvironment);
    validateFrom(merged, 'the RINGKV_* environment variables');
  }
  return validateConfig(mergeConfig(merged, configFromFlags(flags)));
}
