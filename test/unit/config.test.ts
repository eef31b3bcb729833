import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import defaults from '../../config/default.json' with { type: 'json' };
import { loadConfig } from '../../src/cli/load-config.js';
import { bucketProperties, configDefaults, validateConfig } from '../../src/config/validate.js';
import { configFromEnvironment } from '../../src/config/environment.js';
import { configSettings } from '../../src/config/schema.js';
import { configTableMarkdown, maskSecrets } from '../../src/config/docs.js';
import { temporaryFolder } from '../integration/processes.js';

/** The message of the KV_BAD_CONFIG that `work` throws. */
function configError(work: () => unknown): string {
  try {
    work();
  } catch (error) {
    expect((error as { code?: string }).code).toBe('KV_BAD_CONFIG');
    return (error as Error).message;
  }
  throw new Error('expected a config error');
}

const folder = temporaryFolder('ringkv-config-');
afterAll(() => folder.remove());

describe('the config schema', () => {
  it('is where the defaults come from: config/default.json lists exactly them', () => {
    expect(defaults).toEqual(configDefaults());
    const config = validateConfig({});
    expect(config.limits.requestTimeoutMs).toBe(5000);
    expect(config.hintedHandoff).toMatchObject({ maxHintsPerTarget: 100_000, maxBytesPerTarget: 268_435_456 });
  });

  it('refuses a misspelt key, naming it and suggesting the nearest known key', () => {
    expect(configError(() => validateConfig({ limits: { requestTimoutMs: 100 } }))).toMatch(
      /unknown config key 'limits\.requestTimoutMs'.*did you mean 'limits\.requestTimeoutMs'/,
    );
    // A setting typed at the top level instead of in its section is found in the section.
    expect(configError(() => validateConfig({ requestTimoutMs: 100 }))).toMatch(
      /unknown config key 'requestTimoutMs'.*did you mean 'limits\.requestTimeoutMs'/,
    );
    expect(configError(() => validateConfig({ buckets: { carts: { nval: 2 } } }))).toMatch(/'buckets\.carts\.nval'.*'buckets\.carts\.nVal'/);
    expect(configError(() => validateConfig({ auth: { tokens: [{ token: 'a'.repeat(20), role: 'read-only', owner: 'x' }] } }))).toMatch(
      /'auth\.tokens\[0\]\.owner'/,
    );
    expect(configError(() => validateConfig({ zzzzzz: 1 }))).toMatch(/unknown config key 'zzzzzz'.*ringkv config table/);
  });

  it('stops loading a config file with a typo, naming the file, the key and the suggestion', () => {
    const file = join(folder.path, 'typo.json');
    writeFileSync(file, JSON.stringify({ limits: { requestTimoutMs: 100 } }));
    const message = configError(() => loadConfig({ config: file }, {}));
    expect(message).toContain(file);
    expect(message).toMatch(/'limits\.requestTimoutMs'.*'limits\.requestTimeoutMs'/);
  });

  it('names the bad field and what it must be, and never shows a secret', () => {
    expect(configError(() => validateConfig({ limits: { requestTimeoutMs: 'soon' } }))).toMatch(
      /'limits\.requestTimeoutMs' must be an integer in 1\.\.600000, got "soon"/,
    );
    expect(configError(() => validateConfig({ partitionCount: 100 }))).toMatch(/'partitionCount' must be a power of two/);
    expect(configError(() => validateConfig({ seeds: ['no-port'] }))).toMatch(/'seeds\[0\]' must be a host:port/);
    expect(configError(() => loadConfig({ peerMap: 'not-an-address=127.0.0.1:2' }, {}))).toMatch(/'peerDialOverrides\.not-an-address'/);
    const secret = 'short-secret';
    const message = configError(() => validateConfig({ clusterSecret: secret }));
    expect(message).toMatch(/'clusterSecret'/);
    expect(message).not.toContain(secret);
  });

  it('keeps every object inside one peer frame: maxValueBytes, maxObjectBytes and handoff.maxPageBytes are judged against the 64 MiB frame cap', () => {
    const mebibyte = 1024 * 1024;
    expect(validateConfig({}).limits).toMatchObject({ maxValueBytes: 8 * mebibyte, maxObjectBytes: 24 * mebibyte });
    // Two largest values must fit as siblings.
    expect(configError(() => validateConfig({ limits: { maxValueBytes: 16 * mebibyte } }))).toMatch(
      /'limits\.maxObjectBytes' must be at least 2 × limits\.maxValueBytes \+ 65536 \(33619968\), so two concurrent writes .* got 25165824/,
    );
    // An object and a value (a conditional write's read and its value) must fit one frame.
    expect(configError(() => validateConfig({ limits: { maxValueBytes: 20 * mebibyte, maxObjectBytes: 48 * mebibyte } }))).toMatch(
      /'limits\.maxObjectBytes' must be at most 45088768 \(the peer frame cap 67108864 − limits\.maxValueBytes 20971520 − 1048576 for the message\).*lower limits\.maxValueBytes or limits\.maxObjectBytes/,
    );
    // A page ends after the object that takes it past maxPageBytes, so the page and that object must fit.
    expect(configError(() => validateConfig({ handoff: { maxPageBytes: 48 * mebibyte } }))).toMatch(
      /'handoff\.maxPageBytes' must be at most 40894464 \(the peer frame cap 67108864 − limits\.maxObjectBytes 25165824 − 1048576\)/,
    );
    expect(validateConfig({ limits: { maxValueBytes: 16 * mebibyte, maxObjectBytes: 40 * mebibyte } }).limits.maxObjectBytes).toBe(40 * mebibyte);
    expect(configError(() => validateConfig({ limits: { maxValueBytes: 64 * mebibyte } }))).toMatch(
      /'limits\.maxValueBytes' must be an integer in 1\.\.33554432/,
    );
  });

  it('keeps bucket properties inside the gossip view bounds: names in UTF-8 bytes, and how many buckets', () => {
    // 600 two-byte characters: 600 characters but 1,200 bytes, over the 1,024 bytes gossip carries.
    expect(configError(() => validateConfig({ buckets: { ['é'.repeat(600)]: { nVal: 2 } } }))).toMatch(
      /'buckets' must be bucket names of at most 1024 UTF-8 bytes, got "a name of 1200 bytes"/,
    );
    expect(validateConfig({ buckets: { ['é'.repeat(512)]: { nVal: 2 } } }).buckets['é'.repeat(512)]).toEqual({ nVal: 2 });
    const many = Object.fromEntries(Array.from({ length: 4097 }, (_, index) => [`b${index}`, { nVal: 2 }]));
    expect(configError(() => validateConfig({ buckets: many }))).toMatch(/'buckets' must be at most 4096 buckets/);
  });

  it("refuses an r or w above the bucket's own n_val, which no request could meet, also when n_val comes from bucketDefaults", () => {
    expect(configError(() => validateConfig({ bucketDefaults: { nVal: 3, w: 4 } }))).toMatch(
      /'bucketDefaults.w' must be one, quorum, all or an integer from 1 to the bucket's nVal \(3\), got 4/,
    );
    expect(configError(() => validateConfig({ bucketDefaults: { nVal: 2 }, buckets: { logs: { r: 3 } } }))).toMatch(
      /'buckets.logs.r' must be .* nVal \(2\), got 3/,
    );
    expect(configError(() => validateConfig({ buckets: { tiny: { nVal: 1 } }, bucketDefaults: { r: 2 } }))).toMatch(/'buckets.tiny.r'/);
    expect(configError(() => validateConfig({ bucketDefaults: { r: 17 } }))).toMatch(/'bucketDefaults.r' must be an integer in 1..16/);
    expect(validateConfig({ bucketDefaults: { nVal: 5, r: 5, w: 'all' }, buckets: { big: { nVal: 16, w: 16 } } }).buckets['big']).toEqual({ nVal: 16, w: 16 });
  });

  it('lets a bucket leave out properties, which then come from bucketDefaults', () => {
    const config = validateConfig({ bucketDefaults: { nVal: 2 }, buckets: { sessions: { conflictMode: 'lww' } } });
    expect(bucketProperties(config, 'sessions')).toEqual({ nVal: 2, r: 'quorum', w: 'quorum', conflictMode: 'lww', ttlSeconds: 0, consistent: false });
  });
});

describe('listen and advertise', () => {
  it('default both to host (and port), as one address used to do', () => {
    const config = loadConfig({ host: '10.1.2.3', port: 17_500 }, {});
    expect(config.listen).toBe('10.1.2.3');
    expect(config.advertise).toBe('10.1.2.3:17500');
  });

  it('bind a wildcard while advertising an address or a DNS name, from flags or the environment', () => {
    expect(loadConfig({ listen: '0.0.0.0', advertise: 'ringkv-2.internal:17101' }, {})).toMatchObject({
      listen: '0.0.0.0',
      advertise: 'ringkv-2.internal:17101',
    });
    expect(loadConfig({}, { RINGKV_LISTEN: '0.0.0.0', RINGKV_ADVERTISE: '10.0.0.7:17101' })).toMatchObject({ listen: '0.0.0.0', advertise: '10.0.0.7:17101' });
  });

  it('refuses to advertise a wildcard address, which no peer could dial', () => {
    expect(configError(() => loadConfig({ host: '0.0.0.0' }, {}))).toMatch(/'advertise' must be a host:port that peers and clients can dial/);
    expect(configError(() => loadConfig({ advertise: 'no port' }, {}))).toMatch(/'advertise' must be a host:port/);
  });

  it('accepts DNS names as seeds', () => {
    expect(loadConfig({ seeds: 'ringkv-1.internal:17101,localhost:17102' }, {}).seeds).toEqual(['ringkv-1.internal:17101', 'localhost:17102']);
  });
});

describe('the environment', () => {
  it('has one RINGKV_* variable per setting, named in the schema or derived from the path', () => {
    const names = configSettings.flatMap((setting) => (setting.env === undefined ? [] : [setting.env]));
    expect(new Set(names).size).toBe(names.length);
    expect(
      configFromEnvironment({ RINGKV_N_VAL: '2', RINGKV_LIMITS_MAX_KEY_BYTES: '100', RINGKV_BUCKET_DEFAULTS_R: '2', RINGKV_STORAGE_COMPRESSION: 'false' }),
    ).toEqual({
      bucketDefaults: { nVal: 2, r: 2 },
      limits: { maxKeyBytes: 100 },
      storage: { compression: false },
    });
    expect(configError(() => configFromEnvironment({ RINGKV_PORT: 'eighty' }))).toMatch(/RINGKV_PORT must be a number/);
  });
});

describe('ringkv config check and the README', () => {
  it('masks every secret in the effective config', () => {
    const token = 'a-very-secret-token-0123';
    const config = validateConfig({
      clusterSecret: 'cluster-secret-0123456789',
      auth: { enabled: true, tokens: [{ token, role: 'read-write', name: 'app' }] },
    });
    const shown = JSON.stringify(maskSecrets(config));
    expect(shown).not.toContain(token);
    expect(shown).not.toContain('cluster-secret-0123456789');
    expect(shown).toContain('"name":"app"');
  });

  it("the README's table of settings is the one the schema generates (`ringkv config table`)", () => {
    const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
    expect(readme).toContain(configTableMarkdown());
  });
});
