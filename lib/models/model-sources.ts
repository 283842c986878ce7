/**
 * Where a bulk registration finds its models on local disk: a folder with one entry per device, or a list file
 * with one model per line. Files are only listed here; each model is read when its turn comes (see
 * bulk-register.ts), so ten thousand models are never all in memory.
 *
 * A folder holds, per device, a subfolder `<device>/` with `model.onnx` and `model.json`, or a package
 * `<device>.tar.gz` (or `.tgz`). A list file holds lines `device,file[,meta]` (`file` a `.onnx` or `.tar.gz`,
 * `meta` a model.json for a bare `.onnx`), paths relative to the list file; blank lines, `#` comments and a
 * `device,file,meta` header are skipped. Anything else is refused by name, never skipped: names starting with `.`
 * are the only ones left out (editor and OS files).
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InvalidModelSource } from '../shared/errors';
import type { Pool } from '../shared/names';
import type { ModelSource } from './bulk-register';
import type { ExternalFiles } from './external-data';
import { readModelUpload } from './model-package';
import type { RegisterModelInput } from './model-registry';

/** Overrides applied to every model of a bulk registration. */
export interface SourceOverrides {
  pool?: Pool;
  threshold?: number;
}

const PACKAGE = /^(.+)\.(tar\.gz|tgz)$/i;

/** The models of a folder: one per `<device>/` subfolder or `<device>.tar.gz`; throws naming every other entry. */
export async function modelsInFolder(folder: string, overrides: SourceOverrides = {}): Promise<ModelSource[]> {
  const entries = (await readdir(folder, { withFileTypes: true })).filter((e) => !e.name.startsWith('.'));
  const sources: ModelSource[] = [];
  const refused: string[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const path = join(folder, entry.name);
    const pkg = PACKAGE.exec(entry.name);
    if (entry.isDirectory()) sources.push(folderSource(entry.name, path, overrides));
    else if (entry.isFile() && pkg?.[1]) sources.push(fileSource(pkg[1], path, undefined, overrides));
    else refused.push(entry.name);
  }
  if (refused.length > 0) {
    const list = refused.slice(0, 10).join(', ') + (refused.length > 10 ? ` and ${refused.length - 10} more` : '');
    const message = `not a model: ${list} (expected <device>/ folders holding model.onnx and model.json, or <device>.tar.gz)`;
    throw new InvalidModelSource(message, folder);
  }
  return sources;
}

/** The models of a list file (`device,file[,meta]` per line); throws naming the line of a malformed entry. */
export async function modelsInList(listFile: string, overrides: SourceOverrides = {}): Promise<ModelSource[]> {
  const base = dirname(resolve(listFile));
  const lines = (await readFile(listFile, 'utf8')).split(/\r?\n/);
  const sources: ModelSource[] = [];
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || (i === 0 && /^device\s*,\s*file\b/i.test(line))) return;
    const [device, file, meta, ...rest] = line.split(',').map((f) => f.trim());
    if (!device || !file || rest.length > 0 || meta === '') {
      throw new InvalidModelSource(`line ${i + 1}: expected device,file[,meta], got ${JSON.stringify(raw)}`, listFile);
    }
    const metaPath = meta === undefined ? undefined : resolve(base, meta);
    sources.push(fileSource(device, resolve(base, file), metaPath, overrides));
  });
  return sources;
}

/** `<device>/model.onnx` with `<device>/model.json`. */
function folderSource(device: string, folder: string, overrides: SourceOverrides): ModelSource {
  return {
    device,
    source: folder,
    read: async () => {
      const metaFile = join(folder, 'model.json');
      const [onnx, meta] = await Promise.all([readFile(join(folder, 'model.onnx')), readJson(metaFile)]);
      const externalFiles = filesIn(folder);
      return readModelUpload(device, new Uint8Array(onnx), 'model.onnx', {
        ...overrides,
        meta,
        metaFile,
        externalFiles,
      });
    },
  };
}

/** A `.tar.gz` package, or a bare `.onnx` with its model.json at `metaFile`. */
function fileSource(
  device: string,
  file: string,
  metaFile: string | undefined,
  overrides: SourceOverrides,
): ModelSource {
  return {
    device,
    source: file,
    read: async (): Promise<RegisterModelInput> => {
      if ((await stat(file)).isDirectory()) return folderSource(device, file, overrides).read();
      const [bytes, meta] = await Promise.all([
        readFile(file),
        metaFile === undefined ? Promise.resolve(undefined) : readJson(metaFile),
      ]);
      const externalFiles = filesIn(dirname(file));
      return readModelUpload(device, new Uint8Array(bytes), basename(file), {
        ...overrides,
        meta,
        metaFile,
        externalFiles,
      });
    },
  };
}

/** The files of `folder`, for a model's external data (which checks each location before it asks). */
export function filesIn(folder: string): ExternalFiles {
  return async (location) => new Uint8Array(await readFile(join(folder, location)));
}

async function readJson(path: string): Promise<unknown> {
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new InvalidModelSource(`invalid JSON: ${(err as Error).message}`, path);
  }
}
