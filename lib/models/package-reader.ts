/**
 * Reads model.onnx, model.json and the package's other files (a model's external data) out of a (gzipped) tar in
 * memory, never extracting anything to disk, and refuses every member that could escape a folder or surprise a
 * reader: links, devices, absolute or `..` paths, members over 256 MiB, a name given twice.
 */
import { Parser, type ReadEntry } from 'tar';
import { InvalidModel } from '../shared/errors';

/** The largest member a model package may hold: bigger models belong in an object store upload, not a tarball. */
const MAX_PACKAGE_MEMBER_BYTES = 256 * 1024 * 1024;

/** The files of a model package, as bytes. */
export interface PackageFiles {
  onnx: Uint8Array;
  meta: Uint8Array;
  /** Every other file, by its path in the package: the model's external data (model.onnx.data), if it has any. */
  others: Map<string, Uint8Array>;
}

/** A member's path as the package's files are keyed: without leading `./` or trailing `/`. */
export function memberName(path: string): string {
  return path.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
}

/**
 * Reads the files of the tar.gz `bytes` (named `fileName` in errors) for `device`: model.onnx and model.json at its
 * root, and the others.
 */
export async function readPackage(bytes: Uint8Array, fileName: string, device: string): Promise<PackageFiles> {
  const members = new Map<string, Buffer[]>([
    ['model.onnx', []],
    ['model.json', []],
  ]);
  const seen = new Set<string>();
  let failure: InvalidModel | undefined;
  const refuse = (member: string, why: string) =>
    new InvalidModel(`${fileName}: member ${JSON.stringify(member)} ${why}`, { device, file: fileName, field: member });

  await new Promise<void>((resolve, reject) => {
    const parser = new Parser({ strict: true });
    const fail = (err: InvalidModel) => {
      failure ??= err;
      parser.abort(err);
    };
    parser.on('entry', (entry: ReadEntry) => {
      const path = entry.path;
      const name = memberName(path);
      if (path.startsWith('/') || /^[A-Za-z]:/.test(path) || path.includes('\\')) {
        return fail(refuse(path, 'has an absolute path'));
      }
      if (name.split('/').includes('..')) return fail(refuse(path, "has a '..' path segment"));
      if (entry.type === 'Directory') return entry.resume();
      if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile') {
        return fail(refuse(path, `is a ${entry.type}; only regular files are allowed`));
      }
      if (entry.size > MAX_PACKAGE_MEMBER_BYTES) {
        return fail(refuse(path, `is ${entry.size} bytes, over the 256 MiB limit`));
      }
      if (seen.has(name)) return fail(refuse(path, 'appears twice'));
      seen.add(name);
      let chunks = members.get(name);
      if (!chunks) members.set(name, (chunks = []));
      entry.on('data', (c: Buffer) => chunks.push(c));
    });
    parser.on('error', (err: Error) => {
      const context = { device, file: fileName };
      reject(failure ?? new InvalidModel(`${fileName}: not a valid tar.gz (${err.message})`, context, { cause: err }));
    });
    parser.on('end', () => (failure ? reject(failure) : resolve()));
    parser.end(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });

  const missing = ['model.onnx', 'model.json'].filter((m) => !seen.has(m));
  if (missing.length > 0) {
    const message = `${fileName}: package must hold model.onnx and model.json at its root`;
    throw new InvalidModel(`${message} (missing ${missing.join(', ')})`, { device, file: fileName, field: missing[0] });
  }
  const concat = (m: string) => new Uint8Array(Buffer.concat(members.get(m) ?? []));
  const others = new Map(
    [...members.keys()].filter((m) => m !== 'model.onnx' && m !== 'model.json').map((m) => [m, concat(m)]),
  );
  return { onnx: concat('model.onnx'), meta: concat('model.json'), others };
}
