/** `fleetscore models register|list`: upload per-device models into the store and show what the index points at. */
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { Command } from 'commander';
import { z } from 'zod';
import { registerModels, type RegisteredPaths, type RegisterModelsResult } from '../../lib/models/bulk-register';
import { readIndex } from '../../lib/models/model-index';
import { registerModelPackage } from '../../lib/models/model-package';
import type { RegisteredModel } from '../../lib/models/model-registry';
import { scoringPathOf } from '../../lib/models/model-sessions';
import { filesIn, modelsInFolder, modelsInList } from '../../lib/models/model-sources';
import { openStore } from '../../lib/store/open-store';
import type { ObjectStore } from '../../lib/store/object-store';
import { positiveInt, storeOption } from '../utils/options';
import { parseOptions } from '../utils/parse-options';
import { createProgressBar } from '../utils/progress-bar';
import { formatTable, output } from '../utils/table';

const registerOptionsSchema = z
  .object({
    device: z.string().min(1).optional(),
    file: z
      .string()
      .min(1)
      .refine((f) => /\.(onnx|tar\.gz|tgz)$/i.test(f), 'must be a .onnx file or a .tar.gz package')
      .optional(),
    dir: z.string().min(1).optional(),
    list: z.string().min(1).optional(),
    meta: z.string().min(1).optional(),
    pool: z.enum(['cpu', 'gpu']).optional(),
    threshold: z.coerce.number().refine(Number.isFinite, 'must be a finite number').optional(),
    partial: z.boolean().default(false),
    concurrency: positiveInt,
    store: storeOption,
    json: z.boolean().default(false),
  })
  .superRefine((o, ctx) => {
    const ways = [o.device !== undefined || o.file !== undefined, o.dir !== undefined, o.list !== undefined];
    if (ways.filter(Boolean).length !== 1) {
      ctx.addIssue({ code: 'custom', path: ['device'], message: 'give --device with --file, or --dir, or --list' });
    } else if (ways[0] && (o.device === undefined || o.file === undefined)) {
      ctx.addIssue({ code: 'custom', path: [o.device === undefined ? 'device' : 'file'], message: 'is required' });
    } else if (!ways[0] && o.meta !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['meta'], message: 'is for one model (--file); a list names its own' });
    }
  });

type RegisterOptions = z.infer<typeof registerOptionsSchema>;

const listOptionsSchema = z.object({ store: storeOption, json: z.boolean().default(false) });

/** One row of `models list`. */
export interface ModelListRow {
  device: string;
  version: string;
  pool: string;
  sha256: string;
}

/** The devices in the store's model index, sorted by device id. */
export async function gatherModelList(store: ObjectStore): Promise<ModelListRow[]> {
  const index = await readIndex(store);
  return Object.entries(index.devices)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([device, e]) => ({ device, version: e.version, pool: e.pool, sha256: e.sha256 }));
}

async function readMetaFile(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new Error(`${path}: invalid JSON: ${(err as Error).message}`, { cause: err });
  }
}

async function registerOne(opts: RegisterOptions & { device: string; file: string }): Promise<void> {
  const [bytes, meta] = await Promise.all([
    readFile(opts.file),
    opts.meta === undefined ? Promise.resolve(undefined) : readMetaFile(opts.meta),
  ]);
  const store = openStore(opts.store);
  // Decided on what registration is about to write (a package's own model.onnx, with the overrides), as a worker
  // will read it: a model no fast path takes and onnxruntime cannot load is refused here.
  let decided: Awaited<ReturnType<typeof scoringPathOf>> | undefined;
  const result = await registerModelPackage(
    store,
    opts.device,
    new Uint8Array(bytes),
    basename(opts.file),
    {
      meta,
      externalFiles: filesIn(dirname(opts.file)),
      ...(opts.meta === undefined ? {} : { metaFile: opts.meta }),
      pool: opts.pool,
      threshold: opts.threshold,
    },
    async (onnx, registered, file) => void (decided = await scoringPathOf(registered.device, onnx, registered, file)),
  );
  const { path, reason } = decided!;
  output(
    opts.json,
    { ...result, store: store.uri, path, ...(reason === undefined ? {} : { pathReason: reason }) },
    (r: RegisteredModel & { store: string }) =>
      `registered ${r.device} ${r.version} (pool ${r.pool}, sha256 ${r.sha256.slice(0, 12)}) in ${r.store}\n` +
      (reason === undefined
        ? `scored by ${path}`
        : `scored by its own onnxruntime session, not a compiled fast path (${reason}); a fleet of such models ` +
          'costs a session per device: see docs/data-and-models.md#model-families-and-their-fast-paths'),
  );
}

async function registerMany(opts: RegisterOptions): Promise<void> {
  const overrides = { pool: opts.pool, threshold: opts.threshold };
  const sources = opts.dir ? await modelsInFolder(opts.dir, overrides) : await modelsInList(opts.list ?? '', overrides);
  if (sources.length === 0) throw new Error(`${opts.dir ?? opts.list}: no models found`);
  const store = openStore(opts.store);
  const bar = opts.json ? undefined : createProgressBar('registering', sources.length);
  let result: RegisterModelsResult;
  try {
    result = await registerModels(store, sources, {
      concurrency: opts.concurrency,
      partial: opts.partial,
      pathOf: scoringPathOf,
      // About a hundred updates whatever the fleet's size: a log gets one line per update.
      onProgress: (done, total, failed) => {
        if (done % Math.ceil(total / 100) === 0 || done === total)
          bar?.update(done, failed > 0 ? `${failed} failed` : '');
      },
    });
  } finally {
    bar?.stop();
  }
  output(opts.json, { ...result, registered: result.registered.length, store: store.uri }, () => describe(result));
  if (result.failed.length > 0) process.exitCode = 1;
}

function describe({ registered, failed, indexMoved, paths }: RegisterModelsResult): string {
  const lines = failed.map((f) => `  ${f.device}: ${f.reason}`);
  const scoredBy = paths ? describePaths(paths) : [];
  if (failed.length === 0)
    return [`registered ${registered.length} models; the index now points at them`, ...scoredBy].join('\n');
  const head = indexMoved
    ? `registered ${registered.length} models and moved the index to them (--partial); ${failed.length} failed:`
    : `${failed.length} of ${registered.length + failed.length} models failed, so the index was not moved ` +
      `(the ${registered.length} versions written stay unused; fix the models and register again, or pass ` +
      `--partial to move the index for the good ones):`;
  return [head, ...lines, ...scoredBy].join('\n');
}

/** Which paths the registered models take, and why those on their own session are not compiled. */
function describePaths({ counts, sessions }: RegisteredPaths): string[] {
  const byCount = Object.entries(counts).sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
  if (byCount.length === 0) return [];
  const head = `scored by ${byCount.map(([path, n]) => `${path} ${n}`).join(', ')}`;
  if (sessions.length === 0) return [head];
  return [
    `${head}; on their own onnxruntime session, not a compiled fast path, each costing a session per device ` +
      '(docs/data-and-models.md#model-families-and-their-fast-paths):',
    ...sessions.map((s) => `  ${s.models} like ${s.device}: ${s.reason}`),
  ];
}

const register = new Command('register')
  .description(
    'register new immutable model versions and point the index at them: one model (--device, --file), or a ' +
      'fleet (--dir, --list) with one index move at the end',
  )
  .option('--device <id>', 'device id (one model)')
  .option(
    '--file <path>',
    'model.onnx (any external data file it names beside it), or a model.tar.gz holding model.onnx and model.json (one model)',
  )
  .option('--meta <path>', 'model.json for a bare .onnx (replaces the one in a package)')
  .option('--dir <folder>', 'a folder of <device>/ subfolders (model.onnx, model.json) or <device>.tar.gz files')
  .option('--list <file>', 'a file of lines device,file[,meta] (paths relative to it)')
  .option('--pool <pool>', 'worker pool that scores it: cpu or gpu (overrides model.json)')
  .option('--threshold <n>', 'anomaly threshold (overrides model.json)')
  .option('--partial', 'with --dir or --list: move the index for the good models even when others failed')
  .option('--concurrency <n>', 'with --dir or --list: models read and written at once', '16')
  .option('--store <uri>', 'store: s3://bucket/prefix or a folder (default: FLEETSCORE_STORE or .fleetscore/store)')
  .option('--json', 'print the result as JSON')
  .action(async (raw: Record<string, unknown>, command: Command) => {
    const opts = parseOptions(command, registerOptionsSchema, raw);
    if (opts.device !== undefined && opts.file !== undefined) {
      await registerOne({ ...opts, device: opts.device, file: opts.file });
    } else {
      await registerMany(opts);
    }
  });

const list = new Command('list')
  .description('list the model version each device is scored with')
  .option('--store <uri>', 'store: s3://bucket/prefix or a folder (default: FLEETSCORE_STORE or .fleetscore/store)')
  .option('--json', 'print the list as JSON')
  .action(async (raw: Record<string, unknown>, command: Command) => {
    const opts = parseOptions(command, listOptionsSchema, raw);
    const rows = await gatherModelList(openStore(opts.store));
    output(opts.json, rows, (r) =>
      r.length === 0
        ? 'no models registered'
        : formatTable(
            ['DEVICE', 'VERSION', 'POOL', 'SHA256'],
            r.map((m) => [m.device, m.version, m.pool, m.sha256.slice(0, 12)]),
          ),
    );
  });

/** `fleetscore models`: register per-device models and list the model index. */
export const modelsCommand = new Command('models')
  .description('register and list per-device models')
  .addCommand(register)
  .addCommand(list);
