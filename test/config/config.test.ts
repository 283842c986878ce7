import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { configurationTable, loadConfig, VARIABLES, webUiBase, workerFolder } from '../../lib/config';
import { InvalidConfig } from '../../lib/shared/errors';

const ROOT = join(__dirname, '..', '..');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    const cfg = loadConfig({});
    expect(cfg).toMatchObject({
      uiPort: 8233,
      uiUrl: undefined,
      logLevel: undefined,
      logFormat: 'text',
      metricsAddress: undefined,
      partsCacheMb: undefined,
      compiledCacheMb: undefined,
      s3Endpoint: undefined,
      s3ForcePathStyle: false,
      awsRegion: 'us-east-1',
      verbose: false,
      faults: false,
    });
    expect(cfg.store).toBe(join(cfg.dataDir, 'store'));
    expect(cfg.programsDir).toBe(join(cfg.dataDir, 'programs'));
    expect(cfg.modelFilesDir).toBe(join(cfg.dataDir, 'model-files'));
    expect(webUiBase(cfg)).toBe('http://localhost:8233');
  });

  it('parses every kind of value', () => {
    const cfg = loadConfig({
      FLEETSCORE_DATA_DIR: '/var/lib/fleetscore',
      FLEETSCORE_UI_PORT: '18233',
      FLEETSCORE_LOG_LEVEL: 'debug',
      FLEETSCORE_LOG_FORMAT: 'JSON',
      FLEETSCORE_METRICS_PORT: '9100',
      FLEETSCORE_S3_FORCE_PATH_STYLE: '1',
      FLEETSCORE_VERBOSE: 'true',
      FLEETSCORE_PARTS_CACHE_MB: '2048',
      FLEETSCORE_COMPILED_CACHE_MB: '256',
      FLEETSCORE_MAX_SESSIONS: '128',
    });
    expect(cfg).toMatchObject({
      dataDir: '/var/lib/fleetscore',
      programsDir: '/var/lib/fleetscore/programs',
      store: '/var/lib/fleetscore/store',
      uiPort: 18233,
      logLevel: 'DEBUG',
      logFormat: 'json',
      metricsAddress: '0.0.0.0:9100',
      s3ForcePathStyle: true,
      verbose: true,
      partsCacheMb: 2048,
      compiledCacheMb: 256,
      maxSessions: 128,
    });
    expect(loadConfig({ FLEETSCORE_PROGRAMS_DIR: '/cache/programs' }).programsDir).toBe('/cache/programs');
    expect(loadConfig({ FLEETSCORE_PROGRAMS_DIR: 'off' }).programsDir).toBeUndefined();
    // Saved programs are files on the worker's host, never in the store.
    expect(() => loadConfig({ FLEETSCORE_PROGRAMS_DIR: 's3://bucket/programs' })).toThrow(
      /FLEETSCORE_PROGRAMS_DIR="s3:\/\/bucket\/programs": must be a folder on the worker's host, not a URI/,
    );
    expect(() => workerFolder('programs', 'file:///var/cache', '/data')).toThrow(
      /programs folder "file:\/\/\/var\/cache": must be a folder on the worker's host/,
    );
    expect(loadConfig({ FLEETSCORE_MODEL_FILES_DIR: 'OFF' }).modelFilesDir).toBeUndefined();
    expect(() => loadConfig({ FLEETSCORE_MODEL_FILES_DIR: 's3://bucket/models' })).toThrow(
      /FLEETSCORE_MODEL_FILES_DIR="s3:\/\/bucket\/models": must be a folder on the worker's host, not a URI/,
    );
    // Links follow the UI port unless a URL is given.
    expect(webUiBase(cfg)).toBe('http://localhost:18233');
    expect(webUiBase(loadConfig({ FLEETSCORE_UI_URL: 'https://temporal.example.com/' }))).toBe(
      'https://temporal.example.com',
    );
  });

  it('prefers the metrics address over the port', () => {
    const cfg = loadConfig({ FLEETSCORE_METRICS_PORT: '9100', FLEETSCORE_METRICS_ADDRESS: '127.0.0.1:1' });
    expect(cfg.metricsAddress).toBe('127.0.0.1:1');
  });

  it.each([
    ['FLEETSCORE_METRICS_PORT', 'x'],
    ['FLEETSCORE_UI_PORT', '70000'],
    ['FLEETSCORE_LOG_LEVEL', 'loud'],
    ['FLEETSCORE_LOG_FORMAT', 'yaml'],
    ['FLEETSCORE_METRICS_ADDRESS', '9100'],
    ['FLEETSCORE_UI_URL', 'not a url'],
    ['FLEETSCORE_S3_FORCE_PATH_STYLE', 'yes'],
    ['FLEETSCORE_PARTS_CACHE_MB', '0'],
    ['FLEETSCORE_COMPILED_CACHE_MB', '1.5'],
    ['FLEETSCORE_MAX_SESSIONS', '0'],
  ])('refuses %s=%s by name', (name, value) => {
    let err: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidConfig);
    expect((err as InvalidConfig).message).toContain(`${name}=${JSON.stringify(value)}`);
    expect((err as InvalidConfig).field).toBe(name);
  });
});

describe('one configuration module', () => {
  it('is the only reader of fleetscore variables', () => {
    const folders = [
      'lib',
      'activities',
      'workers',
      'workflows',
      'schedules',
      'cli',
      'bench',
      'scripts',
      'test/support',
    ];
    const names = Object.keys(VARIABLES).join('|');
    const reads = new RegExp(`(?:process\\.env|\\benv)(?:\\.(?:${names})\\b|\\[['"](?:${names})['"]\\])`, 'g');
    const found = folders
      .flatMap((f) => tsFiles(join(ROOT, f)))
      .filter((file) => !file.endsWith(join('lib', 'config.ts')))
      .flatMap((file) =>
        [...readFileSync(file, 'utf8').matchAll(reads)].map((m) => `${relative(ROOT, file)}: ${m[0]}`),
      );
    expect(found).toEqual([]);
  });

  it('is what the configuration table in docs/operations.md says', () => {
    const docs = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
    expect(docs).toContain(configurationTable());
  });
});
