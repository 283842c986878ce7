/**
 * fleetscore's environment variables, all of them: each is parsed and validated here, once, with its default and
 * meaning beside it; everything else receives the typed {@link FleetscoreConfig}. Temporal's own connection
 * variables (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_PROFILE`, TLS, API key) are read by
 * `@temporalio/envconfig` (lib/temporal/connection.ts) and the AWS credential chain by the AWS SDK: they are
 * listed in {@link FOREIGN_VARIABLES} for the docs, not parsed here. docs/operations.md's configuration table is
 * rendered from these definitions, and a test fails when the two disagree.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { InvalidConfig } from './shared/errors';

const LOG_LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'] as const;

/** A worker log level, as the Temporal runtime names them. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** How log lines are written: `text` for people, `json` (one object per line) for log pipelines. */
export type LogFormat = 'text' | 'json';

const port = z.coerce.number().int().min(1).max(65535);
const flag = z.enum(['0', '1', 'true', 'false']).transform((v) => v === '1' || v === 'true');
const hostPort = z.string().regex(/^[^\s:]+:\d{1,5}$/, 'must be host:port, e.g. 0.0.0.0:9464');
const url = z.url();
/** A folder on the worker's host, or `off`. */
const hostFolder = z
  .string()
  .min(1)
  .refine((v) => !/^[a-z][a-z0-9+.-]*:\/\//i.test(v), "must be a folder on the worker's host, not a URI");
const mebibytes = z.coerce
  .number()
  .int()
  .min(1)
  .max(1024 * 1024);

/** One variable: how its raw string is parsed, the default as the docs state it, and what it does. */
interface Variable {
  schema: z.ZodType;
  default: string;
  meaning: string;
  /** Read only by the test suite (not by a user's deployment). */
  tests?: true;
}

/** Every `FLEETSCORE_*` variable (and `TEMPORAL_CLI`), in the order the docs list them. */
export const VARIABLES = {
  FLEETSCORE_STORE: {
    schema: z.string().min(1),
    default: '`.fleetscore/store`',
    meaning: 'store URI: a folder, `file:///abs/path` or `s3://bucket/prefix`',
  },
  FLEETSCORE_DATA_DIR: {
    schema: z.string().min(1),
    default: '`.fleetscore`',
    meaning: "embedded default's folder (Temporal's SQLite file, store, logs)",
  },
  FLEETSCORE_UI_PORT: {
    schema: port,
    default: '`8233`',
    meaning: 'Web UI port of a dev server that `fleetscore up` starts',
  },
  FLEETSCORE_UI_URL: {
    schema: url,
    default: '`http://localhost:<UI port>`',
    meaning: 'Web UI base of the links fleetscore prints',
  },
  FLEETSCORE_LOG_LEVEL: {
    schema: z.string().transform((v, ctx) => {
      const level = LOG_LEVELS.find((l) => l === v.toUpperCase());
      if (!level) ctx.addIssue({ code: 'custom', message: `must be one of ${LOG_LEVELS.join(', ')}` });
      return level ?? z.NEVER;
    }),
    default: '`INFO` (`WARN` under `up`)',
    meaning: 'worker log level: `TRACE`, `DEBUG`, `INFO`, `WARN` or `ERROR`',
  },
  FLEETSCORE_LOG_FORMAT: {
    schema: z
      .string()
      .transform((v) => v.toLowerCase())
      .pipe(z.enum(['text', 'json'])),
    default: '`text`',
    meaning: 'log lines as `text` or `json` (one object per line)',
  },
  FLEETSCORE_METRICS_PORT: {
    schema: port,
    default: 'none',
    meaning: "a worker's Prometheus endpoint on `0.0.0.0:<port>`",
  },
  FLEETSCORE_METRICS_ADDRESS: {
    schema: hostPort,
    default: 'none',
    meaning: "a worker's Prometheus endpoint as `host:port` (wins over the port)",
  },
  FLEETSCORE_PARTS_CACHE_MB: {
    schema: mebibytes,
    default: '`768`',
    meaning: 'MiB of parsed Arrow parts a worker keeps (`--parts-cache-mb`)',
  },
  FLEETSCORE_COMPILED_CACHE_MB: {
    schema: mebibytes,
    default: '`768`',
    meaning: 'MiB of compiled models a worker keeps (`--compiled-cache-mb`)',
  },
  FLEETSCORE_MAX_SESSIONS: {
    schema: z.coerce.number().int().min(1).max(1_000_000),
    default: '`4096`; gpu `64`',
    meaning: 'onnxruntime sessions a worker keeps (`--max-sessions`)',
  },
  FLEETSCORE_PROGRAMS_DIR: {
    schema: hostFolder,
    default: '`<data dir>/programs`',
    meaning: 'compiled forests kept across restarts (`--programs-dir`; `off`: none)',
  },
  FLEETSCORE_MODEL_FILES_DIR: {
    schema: hostFolder,
    default: '`<data dir>/model-files`',
    meaning: 'S3 models kept across restarts (`--model-files-dir`; `off`: none)',
  },
  FLEETSCORE_MODEL_FILES_MB: {
    schema: mebibytes,
    default: '`2048`',
    meaning: 'MiB of model files the folder keeps (`--model-files-mb`)',
  },
  FLEETSCORE_S3_ENDPOINT: {
    schema: url,
    default: 'AWS',
    meaning: "an S3-compatible server (MinIO, ...); a URI's `?endpoint=` wins",
  },
  FLEETSCORE_S3_FORCE_PATH_STYLE: {
    schema: flag,
    default: '`false`',
    meaning: 'path-style S3 addressing (most S3-compatible servers need it)',
  },
  AWS_REGION: {
    schema: z.string().min(1),
    default: '`us-east-1`',
    meaning: "the S3 store's region; a store URI's `?region=` wins",
  },
  FLEETSCORE_VERBOSE: {
    schema: flag,
    default: '`0`',
    meaning: 'CLI errors with stack traces (as `--verbose`)',
  },
  TEMPORAL_CLI: {
    schema: z.string().min(1),
    default: '`PATH`, else `.tools/bin/temporal`',
    meaning: 'the Temporal CLI binary that runs the dev server',
  },
  FLEETSCORE_S3_SERVER: {
    schema: z.string().min(1),
    default: '`.tools/bin/minio`, built on first use',
    meaning: 'the S3-compatible server binary the tests start',
    tests: true,
  },
  FLEETSCORE_TEST_SERVER: {
    schema: z.string().min(1),
    default: '`.tools/temporal-test-server/run`',
    meaning: 'the time-skipping test server of the timer tests',
    tests: true,
  },
  FLEETSCORE_FAULTS: {
    schema: flag,
    default: '`0`',
    meaning: 'the fault suite joins jest (`npm run test:faults` sets it)',
    tests: true,
  },
} as const satisfies Record<string, Variable>;

/** Variables fleetscore documents but does not parse: the Temporal SDK's and the AWS SDK's own. */
export const FOREIGN_VARIABLES = [
  {
    names: '`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`',
    meaning: 'Temporal frontend and namespace (read by `@temporalio/envconfig`)',
    default: '`127.0.0.1:7233`, `default`',
  },
  {
    names: '`TEMPORAL_PROFILE`, `TEMPORAL_CONFIG_FILE`',
    meaning: "a profile of Temporal's TOML client config",
    default: '`default` profile, if any',
  },
  { names: '`TEMPORAL_API_KEY`, `TEMPORAL_TLS*`', meaning: 'Temporal Cloud API key, TLS and mTLS', default: 'off' },
  {
    names: '`AWS_ACCESS_KEY_ID`, `AWS_PROFILE`, ...',
    meaning: "S3 credentials: the AWS SDK's standard chain",
    default: 'SDK defaults',
  },
] as const;

type Parsed = { [K in keyof typeof VARIABLES]?: z.output<(typeof VARIABLES)[K]['schema']> };

/** The parsed configuration; what every module receives instead of reading the environment. */
export interface FleetscoreConfig {
  /** Absolute path of the embedded default's data folder. */
  dataDir: string;
  /** The store URI (or absolute folder) to use when a command names none. */
  store: string;
  uiPort: number;
  /** `FLEETSCORE_UI_URL` without a trailing slash, when set; see {@link webUiBase}. */
  uiUrl: string | undefined;
  /** The log level asked for, or `undefined` for the command's own default. */
  logLevel: LogLevel | undefined;
  logFormat: LogFormat;
  /** `host:port` of a worker's Prometheus endpoint, or `undefined` for none. */
  metricsAddress: string | undefined;
  /** A worker's cache budgets in MiB when set; see workers/pool-worker's `cacheBudgets`. */
  partsCacheMb: number | undefined;
  compiledCacheMb: number | undefined;
  /** onnxruntime sessions a worker keeps when set; see workers/pool-worker's `createPoolWorker`. */
  maxSessions: number | undefined;
  /** The folder of saved compiled programs (`FLEETSCORE_PROGRAMS_DIR`), or `undefined` for none (`off`). */
  programsDir: string | undefined;
  /** The folder of an S3 store's kept model files (`FLEETSCORE_MODEL_FILES_DIR`), or `undefined` for none. */
  modelFilesDir: string | undefined;
  /** Its bound in MiB when set; see workers/pool-worker's `createPoolWorker`. */
  modelFilesMb: number | undefined;
  s3Endpoint: string | undefined;
  s3ForcePathStyle: boolean;
  awsRegion: string;
  verbose: boolean;
  temporalCli: string | undefined;
  s3Server: string | undefined;
  testServer: string | undefined;
  faults: boolean;
}

/** Parses and validates every variable of `env`; an invalid one fails with its name, value and what it must be. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): FleetscoreConfig {
  const parsed: Parsed = {};
  const problems: string[] = [];
  for (const [name, variable] of Object.entries(VARIABLES) as [keyof typeof VARIABLES, Variable][]) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    const result = variable.schema.safeParse(raw);
    if (result.success) (parsed as Record<string, unknown>)[name] = result.data;
    else problems.push(`${name}=${JSON.stringify(raw)}: ${result.error.issues.map((i) => i.message).join('; ')}`);
  }
  if (problems.length > 0) {
    throw new InvalidConfig(`invalid environment: ${problems.join(', ')}`, { field: problems[0]?.split('=')[0] });
  }
  const dataDir = resolve(parsed.FLEETSCORE_DATA_DIR ?? '.fleetscore');
  const uiPort = parsed.FLEETSCORE_UI_PORT ?? 8233;
  return {
    dataDir,
    store: parsed.FLEETSCORE_STORE ?? resolve(dataDir, 'store'),
    uiPort,
    uiUrl: parsed.FLEETSCORE_UI_URL?.replace(/\/+$/, ''),
    logLevel: parsed.FLEETSCORE_LOG_LEVEL,
    logFormat: parsed.FLEETSCORE_LOG_FORMAT ?? 'text',
    metricsAddress:
      parsed.FLEETSCORE_METRICS_ADDRESS ??
      (parsed.FLEETSCORE_METRICS_PORT === undefined ? undefined : `0.0.0.0:${parsed.FLEETSCORE_METRICS_PORT}`),
    partsCacheMb: parsed.FLEETSCORE_PARTS_CACHE_MB,
    compiledCacheMb: parsed.FLEETSCORE_COMPILED_CACHE_MB,
    maxSessions: parsed.FLEETSCORE_MAX_SESSIONS,
    programsDir: workerFolder('programs', parsed.FLEETSCORE_PROGRAMS_DIR, dataDir),
    modelFilesDir: workerFolder('model files', parsed.FLEETSCORE_MODEL_FILES_DIR, dataDir),
    modelFilesMb: parsed.FLEETSCORE_MODEL_FILES_MB,
    s3Endpoint: parsed.FLEETSCORE_S3_ENDPOINT,
    s3ForcePathStyle: parsed.FLEETSCORE_S3_FORCE_PATH_STYLE ?? false,
    awsRegion: parsed.AWS_REGION ?? 'us-east-1',
    verbose: parsed.FLEETSCORE_VERBOSE ?? false,
    temporalCli: parsed.TEMPORAL_CLI,
    s3Server: parsed.FLEETSCORE_S3_SERVER,
    testServer: parsed.FLEETSCORE_TEST_SERVER,
    faults: parsed.FLEETSCORE_FAULTS ?? false,
  };
}

/**
 * The folders a worker keeps files in on its host, by what they hold: the data folder's subfolder by default, and
 * the configuration field an error names.
 */
const WORKER_FOLDERS = {
  programs: { subfolder: 'programs', field: 'programsDir' },
  'model files': { subfolder: 'model-files', field: 'modelFilesDir' },
} as const;

/**
 * A worker's folder of `what` as given (`off`: none), resolved; the data folder's subfolder when none is given.
 * They live on the worker's host: a URI (`s3://...`) is refused.
 */
export function workerFolder(
  what: keyof typeof WORKER_FOLDERS,
  given: string | undefined,
  dataDir: string,
): string | undefined {
  const { subfolder, field } = WORKER_FOLDERS[what];
  if (given === undefined) return resolve(dataDir, subfolder);
  const parsed = hostFolder.safeParse(given);
  if (!parsed.success) {
    const message = parsed.error.issues.map((i) => i.message).join('; ');
    throw new InvalidConfig(`${what} folder ${JSON.stringify(given)}: ${message}`, { field });
  }
  return given.toLowerCase() === 'off' ? undefined : resolve(given);
}

/** The Web UI base of printed links: `FLEETSCORE_UI_URL`, else the local dev server's UI on the configured port. */
export function webUiBase(cfg: Pick<FleetscoreConfig, 'uiUrl' | 'uiPort'> = config()): string {
  return cfg.uiUrl ?? `http://localhost:${cfg.uiPort}`;
}

/**
 * The store a schedules module declares when it names none: `FLEETSCORE_STORE` of `env`, else the embedded default
 * folder. Part of the public schedules API (`fleetscore/schedules`), for modules that take their environment as an
 * argument.
 */
export function defaultStoreUri(env: NodeJS.ProcessEnv = process.env): string {
  return loadConfig(env).store;
}

let current: FleetscoreConfig | undefined;

/** This process's configuration, parsed from `process.env` on first use. */
export function config(): FleetscoreConfig {
  current ??= loadConfig();
  return current;
}

/** The configuration table of the docs (docs/operations.md), rendered from the definitions above. */
export function configurationTable(): string {
  const rows = [
    ...Object.entries(VARIABLES).map(([name, v]: [string, Variable]) => [
      `\`${name}\``,
      v.tests ? `${v.meaning} (tests)` : v.meaning,
      v.default,
    ]),
    ...FOREIGN_VARIABLES.map((v) => [v.names, v.meaning, v.default]),
  ];
  const widths = [0, 1, 2].map((i) =>
    Math.max(...[['variable', 'meaning', 'default'], ...rows].map((r) => r[i]!.length)),
  );
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [
    line(['variable', 'meaning', 'default']),
    `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`,
    ...rows.map(line),
  ].join('\n');
}
