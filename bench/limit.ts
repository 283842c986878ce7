/**
 * The limit: fleetscore's own scoring kernel with nothing around it. One process prepares every device's model
 * the way a worker does (stacked Mahalanobis parameters, a compiled program, or a session) and reads every
 * device's rows, untimed; the timed part scores all of them from memory, as a shard does, with no orchestration
 * and no I/O. With `--no-batching`, every model is scored by its own onnxruntime session instead.
 *
 * Usage: tsx bench/limit.ts STORE_DIR WINDOW [--no-batching]   (prints one JSON line)
 */
import { loadWindowAggregates } from '../lib/arrow/aggregates';
import { forEachLimited } from '../lib/shared/concurrency';
import { readIndex } from '../lib/models/model-index';
import { ModelSessionCache, type PreparedModel } from '../lib/models/model-sessions';
import { LocalStore } from '../lib/store/local-store';
import { parseWindow } from '../lib/shared/window';

async function run(): Promise<void> {
  const [dir, windowId] = process.argv.slice(2);
  if (!dir || !windowId) throw new Error('usage: tsx bench/limit.ts STORE_DIR WINDOW [--no-batching]');
  const store = new LocalStore(dir);
  const window = parseWindow(windowId);
  const index = await readIndex(store);
  const aggregates = await loadWindowAggregates(store, window);
  const sessions = new ModelSessionCache({ batching: !process.argv.includes('--no-batching') });
  const prepared: ({ model: PreparedModel; x: Float32Array; rows: number } | undefined)[] = [];
  const paths: Record<string, number> = {};
  // Prepared as a shard prepares them, a few at a time (compiling runs in threads), and untimed.
  await forEachLimited(Object.entries(index.devices), 8, async ([device, entry], i) => {
    const meta = await sessions.modelMeta(store, device, entry);
    const rows = aggregates.device(device, meta.features);
    if (!rows) return;
    const model = await sessions.prepare(store, device, entry);
    paths[model.path] = (paths[model.path] ?? 0) + 1;
    prepared[i] = { model, x: rows.x, rows: rows.rows };
  });
  const work = prepared.filter((w) => w !== undefined);
  const start = performance.now();
  let total = 0;
  const stacked = work.flatMap((w) => (w.model.kind === 'stacked' ? [{ ...w, model: w.model }] : []));
  await sessions.scoreStacked(stacked);
  for (const w of work) {
    if (w.model.kind === 'session') await w.model.model.score(w.x, w.rows);
    total += w.rows;
  }
  const wallS = (performance.now() - start) / 1000;
  const peakRssMb = process.resourceUsage().maxRSS / 1024;
  await sessions.close();
  process.stdout.write(
    `${JSON.stringify({ rows: total, wall_s: wallS, rows_per_s: total / wallS, peak_rss_mb: peakRssMb, paths })}\n`,
  );
}

run().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
