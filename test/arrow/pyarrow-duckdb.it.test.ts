/**
 * fleetscore against the real Python data stack: parts written by pyarrow and pandas with their defaults (LZ4 and
 * ZSTD compressed Feather, IPC streams, microsecond and nanosecond timestamps) are scored, the predictions join
 * back to their rows in pandas, and DuckDB reads exactly the committed rows with the query docs/data-and-models.md
 * documents. The Python venv (.tools/py-interop) is made on first use.
 */
import { execFile } from 'node:child_process';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { registerModels } from '../../lib/models/bulk-register';
import { LocalStore } from '../../lib/store/local-store';
import { parseWindow } from '../../lib/shared/window';
import { twoFeatureMeta, twoFeatureModel } from '../support/model-files';
import { ensurePythonVenv, INTEROP_PACKAGES, INTEROP_VENV } from '../support/python-venv';
import { runWindow } from '../support/run-window';

jest.setTimeout(600_000);

const exec = promisify(execFile);
const HERE = resolve(__dirname, 'interop');
const W12 = '2026-11-21T12';
const W13 = '2026-11-21T13';
const DEVICES = ['dev-a', 'dev-b', 'dev-c', 'dev-d', 'dev-e', 'dev-f'];

let python: string;
let dir: string;
let store: LocalStore;

async function py<T>(script: string, args: string[], input?: string): Promise<T> {
  const child = exec(python, [join(HERE, script), ...args], { maxBuffer: 1 << 26 });
  if (input !== undefined) child.child.stdin?.end(input);
  const { stdout } = await child;
  return JSON.parse(stdout) as T;
}

/** The SQL block docs/data-and-models.md documents for committed predictions, exactly as written there. */
async function documentedQuery(): Promise<string> {
  const doc = await readFile(resolve(__dirname, '../../docs/data-and-models.md'), 'utf8');
  const match = /<!-- committed-predictions-query[^>]*-->\s*```sql\n([\s\S]*?)```/.exec(doc);
  if (!match?.[1]) throw new Error('docs/data-and-models.md has no committed-predictions-query block');
  return match[1];
}

beforeAll(async () => {
  python = await ensurePythonVenv(INTEROP_VENV, INTEROP_PACKAGES);
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-interop-'));
  // The documented query names the embedded default store, relative to where it runs.
  store = new LocalStore(join(dir, '.fleetscore', 'store'));
  const aggregates = (w: string) => join(dir, '.fleetscore', 'store', 'aggregates', `window=${w}`);
  const [start12, start13] = [W12, W13].map((w) => String(parseWindow(w).startMs));
  await exec(python, [join(HERE, 'write_parts.py'), aggregates(W12), aggregates(W13), start12!, start13!]);
  const meta = { ...twoFeatureMeta, features: ['s00', 's01'] };
  const sources = DEVICES.map((device) => ({
    device,
    source: device,
    read: () => Promise.resolve({ device, onnx: twoFeatureModel, meta }),
  }));
  expect((await registerModels(store, sources)).failed).toEqual([]);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('parts pyarrow and pandas write, predictions DuckDB reads', () => {
  let committed12: string;
  let committed13: string;

  beforeAll(async () => {
    // The first run of window 12 is superseded by the second: its files stay, its rows must not be returned.
    await runWindow(store, W12, { shardSize: 2, predictionsFormat: 'parquet' });
    committed12 = (await runWindow(store, W12, { shardSize: 2, predictionsFormat: 'parquet' })).manifest.runId;
    committed13 = (await runWindow(store, W13, { shardSize: 2, predictionsFormat: 'parquet' })).manifest.runId;
  });

  it('scores every device of LZ4 and ZSTD Feather, IPC file and stream parts; a marker file is ignored', async () => {
    const manifest = JSON.parse(
      Buffer.from(await store.get(`predictions/window=${W12}/_manifest.json`)).toString(),
    ) as { counts: Record<string, number>; devices: Record<string, { status: string }> };
    expect(manifest.counts).toMatchObject({ devices: 6, scored: 5, noData: 1, failed: 0, rows: 50 });
    expect(manifest.devices['dev-f']!.status).toBe('no-data');
  });

  it.each([
    [W12, 'timestamp[us, tz=UTC]', 50],
    [W13, 'timestamp[ns]', 20],
  ])(
    'keeps the input timestamp type of window %s (%s), so every prediction joins back to its row in pandas',
    async (window, type, rows) => {
      const joined = await py<{ predictions: number; rows: number; matched: number; ts_types: string[] }>(
        'join_predictions.py',
        [join(dir, '.fleetscore', 'store'), window],
      );
      expect(joined).toMatchObject({ predictions: rows, rows, matched: rows, ts_types: [type] });
    },
  );

  it('returns exactly the committed rows with the documented DuckDB query, where a glob returns superseded ones', async () => {
    const query = await documentedQuery();
    const result = await py<{ columns: string[]; rows: unknown[][] }>('run_query.py', [dir], `${query};`);
    expect(result.columns).toEqual(['device_id', 'ts', 'score', 'is_anomaly', 'model_version', 'run', 'window']);
    const runOf = result.columns.indexOf('run');
    const windowOf = result.columns.indexOf('window');
    const runs = new Map<string, Set<unknown>>();
    for (const row of result.rows)
      runs.set(String(row[windowOf]), (runs.get(String(row[windowOf])) ?? new Set()).add(row[runOf]));
    expect(result.rows).toHaveLength(70);
    expect(runs).toEqual(
      new Map([
        [W12, new Set([committed12])],
        [W13, new Set([committed13])],
      ]),
    );

    const glob = "SELECT count(*) AS n FROM read_parquet('.fleetscore/store/predictions/window=*/run=*/*.parquet');";
    const all = await py<{ rows: number[][] }>('run_query.py', [dir], glob);
    expect(all.rows[0]![0]).toBe(120);
  });
});
