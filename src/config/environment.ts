import { Kind } from '@sinclair/typebox';
import { KvError } from '../util/errors.js';
import { type ConfigSetting, configSettings } from './schema.js';
import { mergeConfig } from './validate.js';

/** The RINGKV_* environment variables: one per setting of the schema, plus the composite ones. */

const listText = (text: string): string[] =>
  text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);

function environmentValue(setting: ConfigSetting, name: string, text: string): unknown {
  const kind = setting.schema[Kind];
  if (kind === 'Integer' || kind === 'Number') {
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value)) throw new KvError('KV_BAD_CONFIG', `environment variable ${name} must be a number, got '${text}'`);
    return value;
  }
  if (kind === 'Boolean') {
    if (text === 'true' || text === '1') return true;
    if (text === 'false' || text === '0') return false;
    throw new KvError('KV_BAD_CONFIG', `environment variable ${name} must be true or false, got '${text}'`);
  }
  if (kind === 'Array') return listText(text);
  // A quorum is a number of replicas or a level name.
  if (kind === 'Union' && /^\d+$/.test(text)) return Number(text);
  return text;
}

/** RINGKV_AUTH_TOKENS: `TOKEN:ROLE,...`; a malformed entry is reported by position, never by its text (it holds a token). */
function tokensText(name: string, text: string): { token: string; role: string }[] {
  return listText(text).map((entry, index) => {
    const colon = entry.lastIndexOf(':');
    if (colon <= 0)
      throw new KvError('KV_BAD_CONFIG', `entry ${index + 1} of environment variable ${name} must be TOKEN:ROLE with ROLE read-only or read-write`);
    return { token: entry.slice(0, colon), role: entry.slice(colon + 1) };
  });
}

/** RINGKV_AUTH_PROTECT: which of status, metrics and ui need a token, for example `status,metrics,ui`. */
function protectText(name: string, text: string): Record<string, boolean> {
  const chosen = listText(text);
  const known = ['status', 'metrics', 'ui'];
  const unknown = chosen.filter((item) => !known.includes(item));
  if (unknown.length > 0)
    throw new KvError('KV_BAD_CONFIG', `environment variable ${name} lists ${unknown.join(', ')}; use a comma-separated subset of ${known.join(', ')}`);
  return { protectStatus: chosen.includes('status'), protectMetrics: chosen.includes('metrics'), protectUi: chosen.includes('ui') };
}

/** Variables that set more than one field, beside the one variable per setting. */
export const compositeEnvironment: Readonly<Record<string, { readonly fields: string; readonly description: string }>> = {
  RINGKV_AUTH_PROTECT: { fields: 'auth.protect*', description: 'a comma-separated subset of `status,metrics,ui`' },
};

function nested(path: string, value: unknown): unknown {
  return path
    .split('.')
    .reverse()
    .reduce<unknown>((inner, part) => ({ [part]: inner }), value);
}

/**
 * The config the RINGKV_* variables of `environment` set: one variable per setting (named in
 * the schema, else RINGKV_ and the path in upper snake case), plus RINGKV_AUTH_PROTECT.
 */
export function configFromEnvironment(environment: Readonly<Record<string, string | undefined>>): unknown {
  let merged: unknown = {};
  // RINGKV_AUTH_TOKENS first: it turns auth on, and an explicit RINGKV_AUTH=false must still win.
  const ordered = [...configSettings].sort((left, right) => Number(right.path === 'auth.tokens') - Number(left.path === 'auth.tokens'));
  for (const setting of ordered) {
    if (setting.env === undefined) continue;
    const text = environment[setting.env];
    if (text === undefined) continue;
    if (setting.path === 'auth.tokens') {
      merged = mergeConfig(merged, { auth: { enabled: true, tokens: tokensText(setting.env, text) } });
    } else {
      merged = mergeConfig(merged, nested(setting.path, environmentValue(setting, setting.env, text)));
    }
  }
  const protect = environment.RINGKV_AUTH_PROTECT;
  if (protect !== undefined) merged = mergeConfig(merged, { auth: protectText('RINGKV_AUTH_PROTECT', protect) });
  return merged;
}

// ---------------------------------------------------------------------------------------------
