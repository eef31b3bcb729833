import { compositeEnvironment } from './environment.js';
import { type ConfigSetting, type NodeConfig, configSettings } from './schema.js';
import { expectedText } from './validate.js';

/** Showing the config: masked for `ringkv config check`, and as the README's table for `ringkv config table`. */

/** A copy of `config` with every secret replaced by `***` (what `ringkv config check` prints). */
export function maskSecrets(config: NodeConfig): unknown {
  const copy = structuredClone(config) as unknown as Record<string, unknown> & { auth: { tokens: Record<string, unknown>[] } };
  if (typeof copy.clusterSecret === 'string') copy.clusterSecret = '***';
  copy.auth.tokens = copy.auth.tokens.map((token) => ({ ...token, token: '***' }));
  return copy;
}

function defaultText(setting: ConfigSetting): string {
  if (setting.path === 'listen') return '`host`';
  if (setting.path === 'advertise') return '`host`:`port`';
  const value = setting.schema.default;
  if (value === undefined) return '';
  return `\`${JSON.stringify(value)}\``;
}

/** The README's table of settings: field, default, environment variable, meaning (generated from the schema). */
export function configTableMarkdown(): string {
  const rows = configSettings.map((setting) => {
    const expected = expectedText(setting.schema);
    const meaning = [setting.schema.description, expected === 'a valid value' ? undefined : expected].filter((part) => part !== undefined).join('; ');
    return `| \`${setting.path}\` | ${defaultText(setting)} | ${setting.env === undefined ? '' : `\`${setting.env}\``} | ${meaning} |`;
  });
  for (const [name, composite] of Object.entries(compositeEnvironment)) rows.push(`| \`${composite.fields}\` | | \`${name}\` | ${composite.description} |`);
  return ['| field | default | variable | meaning |', '|---|---|---|---|', ...rows].join('\n');
}
