/**
 * `fleetscore predictions show | prune`: a committed window's predictions, and the run folders no manifest names.
 * A window is named by the WINDOW argument; `--window W` is the same, kept as an alias.
 */
import type { Duration } from '@temporalio/common';
import { Command } from 'commander';
import { z } from 'zod';
import { predictionRows, readPredictions, type PredictionRow } from '../../lib/arrow/predictions';
import { isoTime } from '../../lib/arrow/timestamps';
import { readManifest } from '../../lib/scoring/manifest';
import { pruneRuns, type PruneOptions, type RunFolder } from '../../lib/scoring/prune-runs';
import { openStore } from '../../lib/store/open-store';
import { parseWindow } from '../../lib/shared/window';
import { durationMs } from '../../lib/shared/duration';
import { notice } from '../utils/notice';
import { parseOptions } from '../utils/parse-options';
import { formatTable, output } from '../utils/table';
import { positiveInt, storeOption, windowInput, windowOption } from '../utils/options';

const showSchema = z.object({
  window: windowOption,
  store: storeOption,
  anomalies: z.boolean().optional(),
  device: z.string().optional(),
  limit: positiveInt,
  json: z.boolean().optional(),
});

/** A window's predictions as `predictions show` selects them: the first `limit` rows, and how many match in all. */
export interface PredictionsPage {
  window: string;
  rows: PredictionRow[];
  /** Rows that match the filters in the whole window (from the manifest's counts). */
  total: number;
  /** Why a device asked for with --device has no rows (no data, or failed and why). */
  deviceStatus?: string;
}

/**
 * Reads a committed window's predictions (only the shard files its manifest lists), filtered, up to the limit. A
 * window without a manifest or a device the manifest does not know is an error; the totals come from the manifest.
 */
export async function gatherPredictions(options: z.infer<typeof showSchema>): Promise<PredictionsPage> {
  const store = openStore(options.store);
  const manifest = await readManifest(store, options.window);
  if (!manifest) throw new Error(`window ${options.window} has no manifest in ${options.store}: it was not committed`);
  let total = options.anomalies ? manifest.counts.anomalies : manifest.counts.rows;
  let deviceStatus: string | undefined;
  if (options.device !== undefined) {
    const outcome = manifest.devices[options.device];
    if (!outcome) {
      throw new Error(
        `device "${options.device}" is not in window ${options.window} (${manifest.counts.devices} devices); ` +
          '`fleetscore models list` lists the devices with a model',
      );
    }
    total = outcome.status === 'scored' ? (options.anomalies ? outcome.anomalies : outcome.rows) : 0;
    if (outcome.status === 'no-data') deviceStatus = 'no data: it had no rows in the window';
    if (outcome.status === 'failed') deviceStatus = `failed: ${outcome.reason}`;
  }
  const rows: PredictionRow[] = [];
  for (const shard of manifest.shards) {
    if (!shard.predictions || rows.length >= options.limit) continue;
    for (const row of predictionRows(readPredictions(await store.get(shard.predictions), shard.predictions))) {
      if (options.anomalies && !row.isAnomaly) continue;
      if (options.device && row.device !== options.device) continue;
      rows.push(row);
      if (rows.length >= options.limit) break;
    }
  }
  return { window: manifest.window, rows, total, ...(deviceStatus ? { deviceStatus } : {}) };
}

const showCommand = new Command('show')
  .description("a committed window's predictions as a table (the first --limit rows; it says when there are more)")
  .argument('[window]', 'window, e.g. 2026-11-21T12')
  .option('--window <window>', 'the same as WINDOW (an alias)')
  .option('--store <uri>', 'store URI')
  .option('--anomalies', 'only anomalous rows')
  .option('--device <id>', 'only this device')
  .option('--limit <n>', 'at most this many rows', '100')
  .option('--json', 'machine-readable output: the rows, as an array')
  .action(async (argument: string | undefined, raw: Record<string, unknown>, command: Command) => {
    const { window, label } = windowInput('fleetscore predictions show', argument, raw.window);
    const options = parseOptions(command, showSchema, { ...raw, window }, { window: label });
    const page = await gatherPredictions(options);
    if (page.total > page.rows.length) {
      notice(
        `showing the first ${page.rows.length} of ${page.total} ${options.anomalies ? 'anomalous ' : ''}rows; ` +
          `--limit ${page.total} shows them all`,
      );
    }
    output(options.json, page.rows, (r) =>
      r.length === 0
        ? `no ${options.anomalies ? 'anomalous ' : ''}predictions in window ${page.window}` +
          (options.device ? ` for device ${options.device}${page.deviceStatus ? ` (${page.deviceStatus})` : ''}` : '')
        : formatTable(
            ['device', 'ts', 'score', 'anomaly', 'model'],
            r.map((p) => [
              p.device,
              isoTime(p.ts, p.tsNanos),
              p.score.toPrecision(6),
              p.isAnomaly ? 'yes' : '',
              p.modelVersion,
            ]),
          ),
    );
  });

/** The shortest grace period prune accepts: it also catches a unit left off (`--older-than 24` is 24 ms). */
const MIN_GRACE_MS = 3_600_000;

const pruneOptionsSchema = z
  .object({
    window: windowOption.optional(),
    from: windowOption.optional(),
    to: windowOption.optional(),
    olderThan: z.string().transform((text, ctx) => {
      const ms = durationMs(text as Duration);
      if (ms === undefined || ms < MIN_GRACE_MS) {
        ctx.addIssue({
          code: 'custom',
          message: `must be a duration of at least 1h, like 24h or 7d, got ${JSON.stringify(text)}`,
        });
        return z.NEVER;
      }
      return { text, ms };
    }),
    keepLogs: z.boolean().default(false),
    dryRun: z.boolean().default(false),
    store: storeOption,
    json: z.boolean().default(false),
  })
  .superRefine((o, ctx) => {
    if (o.window !== undefined && (o.from !== undefined || o.to !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['window'], message: 'give either a window or --from/--to, not both' });
    } else if ((o.from === undefined) !== (o.to === undefined)) {
      ctx.addIssue({ code: 'custom', path: [o.from ? 'to' : 'from'], message: 'pass --from and --to together' });
    } else if (o.from !== undefined && o.to !== undefined && o.to <= o.from) {
      ctx.addIssue({
        code: 'custom',
        path: ['to'],
        message: 'must be after --from: the range [--from, --to) holds no window',
      });
    }
  });

/** What `predictions prune` did (or, on a dry run, would do). */
export interface PruneReport {
  store: string;
  dryRun: boolean;
  olderThan: string;
  keepLogs: boolean;
  folders: RunFolder[];
}

/** The windows the options name: one, those (of any length) starting in `[from, to)`, or every window in the store. */
function selectedWindows(o: z.infer<typeof pruneOptionsSchema>): Pick<PruneOptions, 'windows' | 'range'> {
  if (o.window !== undefined) return { windows: [o.window] };
  if (o.from === undefined || o.to === undefined) return {};
  return { range: { fromMs: parseWindow(o.from).startMs, toMs: parseWindow(o.to).startMs } };
}

const pruneCommand = new Command('prune')
  .description(
    'delete the run folders (predictions and logs) of runs the manifest does not name: superseded, failed or ' +
      'cancelled runs, once nothing in them nor the manifest was written within --older-than',
  )
  .argument('[window]', 'only this window, e.g. 2026-11-21T12')
  .option('--window <window>', 'the same as WINDOW (an alias)')
  .option('--from <window>', 'only windows from this one on (with --to)')
  .option('--to <window>', 'only windows before this one (with --from)')
  .option('--older-than <duration>', 'grace period: keep folders written more recently (at least 1h)', '24h')
  .option('--keep-logs', "keep the runs' logs, delete only their predictions folders")
  .option('--dry-run', 'show what would be deleted, delete nothing')
  .option('--store <uri>', 'store URI')
  .option('--json', 'machine-readable output')
  .action(async (argument: string | undefined, raw: Record<string, unknown>, command: Command) => {
    const { window, label } = windowInput('fleetscore predictions prune', argument, raw.window);
    const options = parseOptions(command, pruneOptionsSchema, { ...raw, window }, { window: label });
    const store = openStore(options.store);
    const folders = await pruneRuns(store, {
      ...selectedWindows(options),
      olderThanMs: options.olderThan.ms,
      keepLogs: options.keepLogs,
      dryRun: options.dryRun,
    });
    const report: PruneReport = {
      store: store.uri,
      dryRun: options.dryRun,
      olderThan: options.olderThan.text,
      keepLogs: options.keepLogs,
      folders,
    };
    output(options.json, report, renderPrune);
    if (folders.some((f) => f.error !== undefined)) process.exitCode = 1;
  });

/** The prune as a table of run folders and one line of totals. */
function renderPrune(r: PruneReport): string {
  if (r.folders.length === 0) return `no run folders to prune in ${r.store}`;
  const action = (f: RunFolder) =>
    f.action === 'keep' ? 'kept' : r.dryRun ? 'would delete' : f.error ? `failed: ${f.error}` : 'deleted';
  const doomed = r.folders.filter((f) => f.action === 'delete');
  const failed = doomed.filter((f) => f.error !== undefined).length;
  const objects = doomed.reduce((n, f) => n + (r.dryRun ? f.toDelete : f.deleted), 0);
  return [
    formatTable(
      ['window', 'run', 'committed', 'objects', 'bytes', 'newest object', 'action', 'why'],
      r.folders.map((f) => [
        f.window,
        f.runId,
        f.committed ? 'yes' : '',
        f.objects,
        f.bytes,
        f.newest,
        action(f),
        f.reason,
      ]),
    ),
    '',
    `${r.dryRun ? 'would delete' : 'deleted'} ${doomed.length - failed} run folder(s), ${objects} object(s)` +
      `${r.keepLogs ? ' (logs kept)' : ''}${failed ? `; ${failed} failed` : ''}; kept ${r.folders.length - doomed.length}` +
      `; grace period ${r.olderThan}${r.dryRun ? ' (dry run: nothing was deleted)' : ''}`,
  ].join('\n');
}

/** `fleetscore predictions show | prune`. */
export const predictionsCommand = new Command('predictions')
  .description('read committed predictions; prune the run folders no manifest names')
  .addCommand(showCommand)
  .addCommand(pruneCommand);
