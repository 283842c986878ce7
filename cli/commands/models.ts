/** `fleetscore models register|list`: upload per-device models into the store and show what the index points at. */
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { Command } from 'commander';
import { z } from 'zod';
import { config } from '../../lib/config';
import { readIndex, registerModelPackage, type RegisteredModel } from '../../lib/models/model-registry';
import { openStore } from '../../lib/store/open-store';
import type { ObjectStore } from '../../lib/store/object-store';
import { formatTable, output } from '../utils/table';

const storeOption = z
  .string()
  .min(1)
  .optional()
  .transform((s) => s ?? config().store);

const registerOptionsSchema = z.object({
  device: z.string().min(1),
  file: z
    .string()
    .min(1)
    .refine((f) => /\.(onnx|tar\.gz|tgz)$/i.test(f), 'must be a .onnx file or a .tar.gz package'),
  meta: z.string().min(1).optional(),
  pool: z.enum(['cpu', 'gpu']).optional(),
  threshold: z.coerce.number().refine(Number.isFinite, 'must be a finite number').optional(),
  store: storeOption,
  json: z.boolean().default(false),
});

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

const register = new Command('register')
  .description('register a new immutable model version for a device and point the index at it')
  .requiredOption('--device <id>', 'device id')
  .requiredOption('--file <path>', 'model.onnx, or a model.tar.gz holding model.onnx and model.json')
  .option('--meta <path>', 'model.json for a bare .onnx (replaces the one in a package)')
  .option('--pool <pool>', 'worker pool that scores it: cpu or gpu (overrides model.json)')
  .option('--threshold <n>', 'anomaly threshold (overrides model.json)')
  .option('--store <uri>', 'store: s3://bucket/prefix or a folder (default: FLEETSCORE_STORE or .fleetscore/store)')
  .option('--json', 'print the result as JSON')
  .action(async (raw: unknown) => {
    const opts = registerOptionsSchema.parse(raw);
    const [bytes, meta] = await Promise.all([
      readFile(opts.file),
      opts.meta === undefined ? Promise.resolve(undefined) : readMetaFile(opts.meta),
    ]);
    const store = openStore(opts.store);
    const result = await registerModelPackage(store, opts.device, new Uint8Array(bytes), basename(opts.file), {
      meta,
      pool: opts.pool,
      threshold: opts.threshold,
    });
    output(
      opts.json,
      { ...result, store: store.uri },
      (r: RegisteredModel & { store: string }) =>
        `registered ${r.device} ${r.version} (pool ${r.pool}, sha256 ${r.sha256.slice(0, 12)}) in ${r.store}`,
    );
  });

const list = new Command('list')
  .description('list the model version each device is scored with')
  .option('--store <uri>', 'store: s3://bucket/prefix or a folder (default: FLEETSCORE_STORE or .fleetscore/store)')
  .option('--json', 'print the list as JSON')
  .action(async (raw: unknown) => {
    const opts = listOptionsSchema.parse(raw);
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
