/**
 * `fleetscore runs list | show | logs | start | watch | cancel | gaps | stale | rescore`: committed windows (read
 * from the store) and runs on Temporal.
 * A window is named by the WINDOW argument everywhere; `--window W` is the same, kept as an alias.
 */
import { Command } from 'commander';
import { z } from 'zod';
import { listCommittedWindows, readManifest, type Manifest } from '../../lib/scoring/manifest';
import { readRunLogs } from '../../lib/scoring/attempt-log';
import { openStore } from '../../lib/store/open-store';
import { devicesDone, findRun, progressStatus, watchRun, type WatchResult } from '../../lib/temporal/run-watch';
import { notice } from '../utils/notice';
import { parseOptions } from '../utils/parse-options';
import { createProgressBar, type ProgressBar } from '../utils/progress-bar';
import { commitLines, failureLines, formatTable, output } from '../utils/table';
import { decimalNumber, positiveInt, storeOption, wholeNumber, windowInput, windowOption } from '../utils/options';
import { withClient } from '../utils/with-client';
import { gapsCommand } from './runs-gaps';
import { runsStartCommand } from './runs-start';
import { cancelCommand } from './runs-cancel';
import { staleCommand } from './runs-stale';
import { rescoreCommand } from './runs-rescore';

/** Gathers the manifests of the `limit` newest committed windows, and how many there are in all. */
async function gatherRuns(storeUri: string, limit: number): Promise<{ manifests: Manifest[]; total: number }> {
  const store = openStore(storeUri);
  const all = await listCommittedWindows(store);
  const windows = all.slice(-limit).reverse();
  const manifests = await Promise.all(windows.map((w) => readManifest(store, w)));
  return { manifests: manifests.filter((m): m is Manifest => m !== undefined), total: all.length };
}

const listCommand = new Command('list')
  .description('committed windows, newest first (read from the manifests in the store)')
  .option('--store <uri>', 'store URI (default: FLEETSCORE_STORE or .fleetscore/store)')
  .option('--limit <n>', 'at most this many windows', '48')
  .option('--json', 'machine-readable output')
  .action(async (raw: Record<string, unknown>, command: Command) => {
    const options = parseOptions(
      command,
      z.object({ store: storeOption, limit: positiveInt, json: z.boolean().optional() }),
      raw,
    );
    const { manifests: runs, total } = await gatherRuns(options.store, options.limit);
    if (total > runs.length) {
      notice(`showing the ${runs.length} newest of ${total} committed windows; --limit ${total} shows them all`);
    }
    output(
      options.json,
      runs.map(({ devices: _devices, ...head }) => head),
      (rows) =>
        rows.length === 0
          ? `no committed windows in ${options.store}`
          : formatTable(
              ['window', 'devices', 'scored', 'no data', 'failed', 'rows', 'anomalies', 'committed', 'workflow'],
              rows.map((m) => [
                m.window,
                m.counts.devices,
                m.counts.scored,
                m.counts.noData,
                m.counts.failed,
                m.counts.rows,
                m.counts.anomalies,
                m.committedAt,
                m.workflowId,
              ]),
            ),
    );
  });

const showCommand = new Command('show')
  .description("one window's manifest: counts, shards and every device that was not scored")
  .argument('[window]', 'window, e.g. 2026-11-21T12')
  .option('--window <window>', 'the same as WINDOW (an alias)')
  .option('--store <uri>', 'store URI')
  .option('--json', 'the whole manifest as JSON')
  .action(async (argument: string | undefined, raw: Record<string, unknown>, command: Command) => {
    const { window, label } = windowInput('fleetscore runs show', argument, raw.window);
    const options = parseOptions(
      command,
      z.object({ window: windowOption, store: storeOption, json: z.boolean().optional() }),
      { ...raw, window },
      { window: label },
    );
    const manifest = await readManifest(openStore(options.store), options.window);
    if (!manifest)
      throw new Error(`window ${options.window} has no manifest in ${options.store}: it was not committed`);
    output(options.json, manifest, (m) => {
      const c = m.counts;
      const notScored = Object.entries(m.devices).filter(([, o]) => o.status !== 'scored');
      const listed = notScored.filter(([, o]) => o.status === 'failed').slice(0, DEVICES_SHOWN);
      listed.push(...notScored.filter(([, o]) => o.status !== 'failed').slice(0, DEVICES_SHOWN - listed.length));
      return [
        `window     ${m.window}  [${m.windowStart}, ${m.windowEnd})`,
        `committed  ${m.committedAt} by ${m.workflowId} (run ${m.runId})${m.scheduleId ? `, schedule ${m.scheduleId}` : ''}`,
        ...(m.supersedes ? [`replaced   run ${m.supersedes.runId}, committed ${m.supersedes.committedAt}`] : []),
        `devices    ${c.devices}: ${c.scored} scored, ${c.noData} no data, ${c.failed} failed; ${c.rows} rows, ${c.anomalies} anomalies`,
        ...fastPathLine(m.devices),
        ...originLines(m.shards),
        ...(m.unknownDevices
          ? [
              `unknown    ${m.unknownDevices.count} device ids have rows but no model (not scored): ` +
                `${m.unknownDevices.devices
                  .slice(0, 10)
                  .map((d) => JSON.stringify(d))
                  .join(', ')}${m.unknownDevices.count > 10 ? ', …' : ''}`,
            ]
          : []),
        '',
        formatTable(
          ['shard', 'pool', 'devices', 'status', 'attempt', 'predictions / reason'],
          m.shards.map((s) => [s.shard, s.pool, s.devices, s.status, s.attempt, s.predictions ?? s.reason]),
        ),
        ...(notScored.length
          ? [
              '',
              formatTable(
                ['device', 'status', 'reason'],
                listed.map(([d, o]) => [d, o.status, o.status === 'failed' ? o.reason : '']),
              ),
            ]
          : []),
        ...(notScored.length > listed.length
          ? [
              `… and ${notScored.length - listed.length} more devices not scored (failed first); ` +
                `\`fleetscore runs show ${m.window} --json\` lists every device`,
            ]
          : []),
      ].join('\n');
    });
  });

/** How many scored devices each fast path scored, e.g. `scored by  compiled:tree-ensemble 480, session 20`. */
function fastPathLine(devices: Manifest['devices']): string[] {
  const counts = new Map<string, number>();
  for (const o of Object.values(devices)) {
    if (o.status === 'scored' && o.path) counts.set(o.path, (counts.get(o.path) ?? 0) + 1);
  }
  return counts.size === 0 ? [] : [`scored by  ${byCount(counts)}`];
}

/**
 * Where the compiled fast path's programs came from, e.g. `programs   cached 9500, saved 300, compiled 200` (held in
 * the worker's memory, read from the saved-programs folder on its host, compiled now), and where the model files
 * the run read came from, e.g. `model files host 19990, store 10` (the folder where workers keep an S3 store's
 * model files, or S3): each summed over the shards, absent when no shard counted any.
 */
function originLines(shards: Manifest['shards']): string[] {
  return [
    ...summedLine(
      'programs  ',
      shards.map((s) => s.programs),
    ),
    ...summedLine(
      'model files',
      shards.map((s) => s.modelFiles),
    ),
  ];
}

/** `label` and `counts` summed by name, or nothing when no shard has counts. */
function summedLine(label: string, counts: readonly (Readonly<Record<string, number>> | undefined)[]): string[] {
  const sums = new Map<string, number>();
  for (const c of counts) for (const [name, n] of Object.entries(c ?? {})) sums.set(name, (sums.get(name) ?? 0) + n);
  return sums.size === 0 ? [] : [`${label} ${byCount(sums)}`];
}

/** Named counts, the largest first: `compiled:tree-ensemble 480, session 20`. */
function byCount(counts: Map<string, number>): string {
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([name, n]) => `${name} ${n}`)
    .join(', ');
}

/** Devices not scored that `runs show` lists by name (failed ones first); `--json` has them all. */
const DEVICES_SHOWN = 50;

const LEVELS = ['info', 'warn', 'error'] as const;

/** The fields every log line has, which the text output shows in its own columns. */
const LOG_HEAD = new Set(['ts', 'level', 'event', 'window', 'runId', 'shard', 'unit', 'attempt', 'log']);

const logsCommand = new Command('logs')
  .description("a run's durable attempt logs from the store: every shard attempt and the commit, in order")
  .argument('[window]', 'window, e.g. 2026-11-21T12')
  .option('--window <window>', 'the same as WINDOW (an alias)')
  .option('--store <uri>', 'store URI')
  .option('--run <id>', 'the run (its run id, the run id of its workflow run); default: the committed run')
  .option('--shard <n>', 'only this shard')
  .option('--device <id>', 'only events about this device')
  .option('--level <level>', `only events at this level or above: ${LEVELS.join(' | ')}`, 'info')
  .option('--json', 'one JSON object per line, as stored')
  .action(async (argument: string | undefined, raw: Record<string, unknown>, command: Command) => {
    const { window, label } = windowInput('fleetscore runs logs', argument, raw.window);
    const options = parseOptions(
      command,
      z.object({
        window: windowOption,
        store: storeOption,
        run: z.string().min(1).optional(),
        shard: wholeNumber(0).optional(),
        device: z.string().min(1).optional(),
        level: z.enum(LEVELS),
        json: z.boolean().optional(),
      }),
      { ...raw, window },
      { window: label },
    );
    const store = openStore(options.store);
    const runId = options.run ?? (await readManifest(store, options.window))?.runId;
    if (!runId) {
      throw new Error(
        `window ${options.window} has no manifest in ${options.store}, so no committed run: name one with --run`,
      );
    }
    const min = LEVELS.indexOf(options.level);
    const events = (await readRunLogs(store, options.window, runId, { shard: options.shard })).filter(
      (e) => LEVELS.indexOf(e.level) >= min && (options.device === undefined || e.device === options.device),
    );
    if (options.json) {
      for (const { log: _log, ...e } of events) process.stdout.write(`${JSON.stringify(e)}\n`);
      return;
    }
    if (events.length === 0) {
      process.stdout.write(`no matching events in the logs of run ${runId} of window ${options.window}\n`);
      return;
    }
    process.stdout.write(
      `${formatTable(
        ['time', 'level', 'unit', 'attempt', 'event', 'details'],
        events.map((e) => [
          e.ts,
          e.level,
          e.shard ?? e.unit,
          e.attempt,
          e.event,
          Object.entries(e)
            .filter(([k]) => !LOG_HEAD.has(k))
            .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
            .join(' '),
        ]),
      )}\n`,
    );
  });

const watchCommand = new Command('watch')
  .description("a running run's progress, live, with a progress bar (the run's progress query)")
  .argument('[window]', 'the open (else the latest) run of this window, e.g. 2026-11-21T12')
  .option('--window <window>', 'the same as WINDOW (an alias)')
  .option('--workflow-id <id>', 'the run with this workflow id')
  .option('--interval <seconds>', 'seconds between looks', '1')
  .option('--json', 'print the final state as JSON')
  .action(async (argument: string | undefined, raw: Record<string, unknown>, command: Command) => {
    const { window, label } = windowInput('fleetscore runs watch', argument, raw.window);
    const options = parseOptions(
      command,
      z
        .object({
          window: windowOption.optional(),
          workflowId: z.string().min(1).optional(),
          interval: decimalNumber(0.1),
          json: z.boolean().optional(),
        })
        .refine((o) => (o.window === undefined) !== (o.workflowId === undefined), {
          message: 'give one of the two',
        }),
      { ...raw, window },
      { window: label, '': 'WINDOW or --workflow-id' },
    );
    await withClient(async (client) => {
      const workflowId = await findRun(
        client,
        options.workflowId ? { workflowId: options.workflowId } : { window: options.window! },
      );
      process.stderr.write(`watching ${workflowId}\n`);
      let bar: ProgressBar | undefined;
      let total = -1;
      let lastError = '';
      const result = await watchRun(
        client,
        workflowId,
        (s) => {
          if (!s.progress) {
            if (s.progressError !== lastError) process.stderr.write(`no progress yet: ${s.progressError}\n`);
            lastError = s.progressError ?? '';
            return;
          }
          const p = s.progress;
          const planned = p.phase === 'planning' ? 0 : p.devicesTotal;
          if (planned !== total) {
            bar?.stop();
            bar = createProgressBar(`window ${p.window}`, planned);
            total = planned;
          }
          bar?.update(devicesDone(p), progressStatus(p));
        },
        options.interval * 1000,
      );
      bar?.stop();
      output(options.json, result, renderWatchResult);
      if (result.status !== 'COMPLETED' || (result.summary?.failed ?? 0) > 0) process.exitCode = 1;
    });
  });

/** The end of `runs watch`: the run's outcome in one or two lines. */
function renderWatchResult(r: WatchResult): string {
  if (!r.summary) return `${r.workflowId}: ${r.status}${r.failure ? `: ${r.failure}` : ''}`;
  const s = r.summary;
  return [
    `${r.workflowId}: ${r.status} · window ${s.window}: ${s.devices} devices, ${s.scored} scored, ${s.noData} no data, ` +
      `${s.failed} failed, ${s.anomalies} anomalies`,
    ...commitLines(s),
    ...failureLines(s),
  ].join('\n');
}

/** `fleetscore runs list | show | logs | start | watch | cancel | gaps | stale | rescore`. */
export const runsCommand = new Command('runs')
  .description('committed windows and manual runs')
  .addCommand(listCommand)
  .addCommand(showCommand)
  .addCommand(logsCommand)
  .addCommand(runsStartCommand)
  .addCommand(watchCommand)
  .addCommand(cancelCommand)
  .addCommand(gapsCommand)
  .addCommand(staleCommand)
  .addCommand(rescoreCommand);
