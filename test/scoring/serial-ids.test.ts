/**
 * A fleet keyed by integer serial numbers, end to end without servers: a window part whose `device_id` is Int64
 * (as pandas writes an integer id column) scored by the real planRun, scoreShard and commitRun. Each serial is the
 * device of that name in the store (its decimal string), scored exactly as the same rows under a string id.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Int64, Table, tableFromIPC, tableToIPC, vectorFromArray, type Vector } from 'apache-arrow';
import { decodePredictions, predictionRows, type PredictionRow } from '../../lib/arrow/predictions';
import { seedDemoFleet } from '../../lib/demo/demo-fleet';
import type { Manifest } from '../../lib/scoring/manifest';
import { keys } from '../../lib/shared/keys';
import { LocalStore } from '../../lib/store/local-store';
import { copyModel } from '../support/copy-model';
import { runWindow } from '../support/run-window';

jest.setTimeout(60_000);

const WINDOW = '2026-11-21T11';
/** Serial numbers and the demo device whose model and rows each one gets; one serial is past 2^53. */
const SERIALS: [bigint, string][] = [
  [10234n, 'dev-00001'],
  [9007199254740993n, 'dev-00002'],
];

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-serial-ids-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every committed prediction row of the window, by device. */
async function committedRows(store: LocalStore, manifest: Manifest): Promise<Map<string, PredictionRow[]>> {
  const rows = new Map<string, PredictionRow[]>();
  for (const shard of manifest.shards) {
    if (!shard.predictions) continue;
    for (const row of predictionRows(decodePredictions(await store.get(shard.predictions)))) {
      rows.set(row.device, [...(rows.get(row.device) ?? []), row]);
    }
  }
  return rows;
}

test('a part keyed by Int64 serial numbers scores each serial with the model registered under its decimal name', async () => {
  const store = new LocalStore(join(dir, 'store'));
  await seedDemoFleet(store, { devices: 3, sensors: 2, hours: 1, endMs: Date.UTC(2026, 10, 21, 12), seed: 5 });
  for (const [serial, from] of SERIALS) await copyModel(store, String(serial), from);

  // A second part: the demo devices' rows again, their ids replaced by the serials, written as pandas does.
  const demo = tableFromIPC(await store.get(keys.aggregatesPart(WINDOW, 0)));
  const ids = demo.getChild('device_id')!.toArray() as string[];
  const keep = ids.flatMap((id, row) => (SERIALS.some(([, from]) => from === id) ? [row] : []));
  const columns: Record<string, Vector> = {};
  for (const field of demo.schema.fields) {
    const values = demo.getChild(field.name)!;
    columns[field.name] =
      field.name === 'device_id'
        ? vectorFromArray(
            keep.map((row) => SERIALS.find(([, from]) => from === ids[row])![0]),
            new Int64(),
          )
        : vectorFromArray(
            keep.map((row) => values.get(row) as unknown),
            field.type,
          );
  }
  await store.put(keys.aggregatesPart(WINDOW, 1), tableToIPC(new Table(columns), 'file'));

  const { manifest } = await runWindow(store, WINDOW);
  const rows = await committedRows(store, manifest);
  for (const [serial, from] of SERIALS) {
    const device = String(serial);
    expect(manifest.devices[device]).toMatchObject({ status: 'scored', version: 'v0001', rows: 60 });
    const scored = rows.get(device)!;
    expect(scored).toHaveLength(60);
    // The same model bytes on the same rows: the same predictions as the demo device's.
    const strip = (r: PredictionRow[]) => r.map(({ ts, score, isAnomaly }) => ({ ts, score, isAnomaly }));
    expect(strip(scored)).toEqual(strip(rows.get(from)!));
  }
  expect(manifest.devices['dev-00003']).toMatchObject({ status: 'scored' });
});
