/**
 * The raw inference limit: one process with every model's session and every device's rows already in memory,
 * a tight loop of onnxruntime-node `run` calls, no orchestration and no I/O in the timed part.
 *
 * Usage: tsx bench/limit.ts STORE_DIR WINDOW   (prints one JSON line)
 */
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { loadWindowAggregates } from '../lib/arrow/aggregates';
import { keys } from '../lib/shared/keys';
import { readIndex } from '../lib/models/model-index';
import { readModelMeta } from '../lib/models/model-registry';
import { LocalStore } from '../lib/store/local-store';
import { parseWindow } from '../lib/shared/window';

async function run(): Promise<void> {
  const [dir, windowId] = process.argv.slice(2);
  if (!dir || !windowId) throw new Error('usage: tsx bench/limit.ts STORE_DIR WINDOW');
  const store = new LocalStore(dir);
  const window = parseWindow(windowId);
  const index = await readIndex(store);
  const aggregates = await loadWindowAggregates(store, window);
  const work: { session: InferenceSession; input: string; x: Float32Array; rows: number; k: number }[] = [];
  for (const [device, entry] of Object.entries(index.devices)) {
    const meta = await readModelMeta(store, device, entry.version);
    const rows = aggregates.device(device, meta.features);
    if (!rows) continue;
    const session = await InferenceSession.create(await store.get(keys.modelOnnx(device, entry.version)), {
      intraOpNumThreads: 1,
      graphOptimizationLevel: 'all',
    });
    work.push({ session, input: meta.input.name, x: rows.x, rows: rows.rows, k: meta.features.length });
  }
  const start = performance.now();
  let total = 0;
  for (const w of work) {
    await w.session.run({ [w.input]: new Tensor('float32', w.x, [w.rows, w.k]) });
    total += w.rows;
  }
  const wallS = (performance.now() - start) / 1000;
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(
    `${JSON.stringify({ rows: total, wall_s: wallS, rows_per_s: total / wallS, peak_rss_mb: peakRssMb })}\n`,
  );
}

run().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
