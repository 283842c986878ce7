import { Command } from 'commander';
import { z } from 'zod';
import { decodePredictions, predictionRows, type PredictionRow } from '../../lib/arrow/predictions';
import { readManifest } from '../../lib/scoring/manifest';
import { openStore } from '../../lib/store/open-store';
import { formatTable, output } from '../utils/table';
import { positiveInt, storeOption, windowOption } from '../utils/options';

const optionsSchema = z.object({
  window: windowOption,
  store: storeOption,
  anomalies: z.boolean().optional(),
  device: z.string().optional(),
  limit: positiveInt,
  json: z.boolean().optional(),
});

/** Reads a committed window's predictions (only the shard files its manifest lists), filtered. */
async function gatherPredictions(options: z.infer<typeof optionsSchema>): Promise<PredictionRow[]> {
  const store = openStore(options.store);
  const manifest = await readManifest(store, options.window);
  if (!manifest) throw new Error(`window ${options.window} has no manifest in ${options.store}: it was not committed`);
  const out: PredictionRow[] = [];
  for (const shard of manifest.shards) {
    if (!shard.predictions) continue;
    for (const row of predictionRows(decodePredictions(await store.get(shard.predictions), shard.predictions))) {
      if (options.anomalies && !row.isAnomaly) continue;
      if (options.device && row.device !== options.device) continue;
      out.push(row);
      if (out.length >= options.limit) return out;
    }
  }
  return out;
}

const showCommand = new Command('show')
  .description("a committed window's predictions as a table")
  .requiredOption('--window <window>', 'window, e.g. 2026-11-21T12')
  .option('--store <uri>', 'store URI')
  .option('--anomalies', 'only anomalous rows')
  .option('--device <id>', 'only this device')
  .option('--limit <n>', 'at most this many rows', '100')
  .option('--json', 'machine-readable output')
  .action(async (raw: Record<string, unknown>) => {
    const options = optionsSchema.parse(raw);
    const rows = await gatherPredictions(options);
    output(options.json, rows, (r) =>
      r.length === 0
        ? `no ${options.anomalies ? 'anomalous ' : ''}predictions in window ${options.window}`
        : formatTable(
            ['device', 'ts', 'score', 'anomaly', 'model'],
            r.map((p) => [
              p.device,
              new Date(p.ts).toISOString(),
              p.score.toPrecision(6),
              p.isAnomaly ? 'yes' : '',
              p.modelVersion,
            ]),
          ),
    );
  });

/** `fleetscore predictions show`. */
export const predictionsCommand = new Command('predictions')
  .description('read committed predictions')
  .addCommand(showCommand);
