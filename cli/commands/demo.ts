/** `fleetscore demo seed`: write a synthetic fleet (models, hourly aggregates, ground truth) into a store. */
import { Command } from 'commander';
import { z } from 'zod';
import { seedDemoFleet, type DemoFleetSummary } from '../../lib/demo/demo-fleet';
import { openStore } from '../../lib/store/open-store';
import { parseWindow } from '../../lib/shared/window';
import { decimalNumber, storeOption, wholeNumber } from '../utils/options';
import { parseOptions } from '../utils/parse-options';
import { output } from '../utils/table';

const int = wholeNumber;

const seedOptionsSchema = z.object({
  devices: int(1, 1_000_000),
  sensors: int(1, 100),
  hours: int(1, 744),
  seed: int(0, 0xffffffff).default(1),
  gpuEvery: int(1, 1_000_000).default(5),
  anomalyRate: decimalNumber(0, 0.5),
  end: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return undefined;
      try {
        return parseWindow(v).startMs;
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    }),
  store: storeOption,
  json: z.boolean().default(false),
});

type SeedOptions = z.infer<typeof seedOptionsSchema>;

/** Seeds the fleet, reporting progress on stderr unless the output is JSON. */
async function runSeed(options: SeedOptions): Promise<DemoFleetSummary> {
  const store = openStore(options.store);
  const progress = !options.json && process.stderr.isTTY;
  return seedDemoFleet(store, {
    devices: options.devices,
    sensors: options.sensors,
    hours: options.hours,
    seed: options.seed,
    gpuEvery: options.gpuEvery,
    anomalyRate: options.anomalyRate,
    ...(options.end === undefined ? {} : { endMs: options.end }),
    onProgress: progress
      ? (p) => {
          process.stderr.write(`\r${p.phase}: ${p.done}/${p.total}${' '.repeat(8)}`);
          if (p.done === p.total) process.stderr.write('\n');
        }
      : undefined,
  });
}

function renderSummary(s: DemoFleetSummary): string {
  const windows = s.windows.length === 1 ? s.windows[0] : `${s.windows[0]} … ${s.windows[s.windows.length - 1]}`;
  return [
    `seeded ${s.devices} devices x ${s.sensors} sensors into ${s.store} in ${(s.elapsedMs / 1000).toFixed(1)}s`,
    `  models     ${s.models.cpu + s.models.gpu} (cpu ${s.models.cpu}, gpu ${s.models.gpu})`,
    `  windows    ${s.windows.length} (${windows ?? 'none'}), ${s.parts} part files`,
    `  rows       ${s.rows}, of which ${s.anomalies} injected anomalies (ground truth under demo/ground-truth/)`,
  ].join('\n');
}

const seedCommand = new Command('seed')
  .description('write per-device models, hourly Arrow aggregates with injected anomalies, and their ground truth')
  .requiredOption('--devices <n>', 'number of devices (dev-00001, …)')
  .requiredOption('--sensors <k>', 'sensors (model features) per device')
  .requiredOption('--hours <h>', 'hourly windows, the last one ending at --end')
  .option('--seed <s>', 'PRNG seed: the same seed writes the same data', '1')
  .option('--gpu-every <n>', "every n-th device's model goes to the gpu pool", '5')
  .option('--anomaly-rate <p>', 'probability that a row is an injected anomaly', '0.01')
  .option('--end <window>', 'hour the last window ends at, e.g. 2026-11-21T13 (default: the current UTC hour)')
  .option('--store <uri>', 'store URI (default: FLEETSCORE_STORE or .fleetscore/store)')
  .option('--json', 'machine-readable output')
  .action(async (raw: Record<string, unknown>, command: Command) => {
    const options = parseOptions(command, seedOptionsSchema, raw);
    output(options.json, await runSeed(options), renderSummary);
  });

/** `fleetscore demo`: synthetic data for trying fleetscore end to end. */
export const demoCommand = new Command('demo').description('synthetic demo fleet').addCommand(seedCommand);
