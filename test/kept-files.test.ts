/**
 * Files kept on the host (lib/kept-files.ts), small and large, read and written synchronously (a shard thread) or
 * not: read back whole, headed by their magic and checksum, and a damaged one reported and deleted, never used.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeptFiles } from '../lib/kept-files';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-kept-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const wording = { file: 'kept file', instead: 'reading it', later: 'kept next time', files: 'kept files' };

describe.each([true, false])('blocking %s', (blocking) => {
  // 1 KB as a model.json, 1 MiB as a forest's model.onnx.
  it.each([1024, 2 ** 20])('keeps %d bytes and reads them back whole; a damaged file is deleted', async (size) => {
    const warnings: string[] = [];
    const files = new KeptFiles(dir, 'v1', {
      magic: 'TEST',
      suffix: '.t',
      wording,
      blocking,
      warn: (m) => warnings.push(m),
    });
    const data = randomBytes(size);
    await files.write('key', data);
    expect(files.stats.written).toBe(1);
    const stored = await readFile(files.fileOf('key'));
    expect(stored.length).toBe(4 + 32 + size);
    expect(stored.subarray(0, 4).toString('ascii')).toBe('TEST');
    expect(Buffer.compare(stored.subarray(36), data)).toBe(0);
    expect(Buffer.compare((await files.read('key'))!, data)).toBe(0);

    stored[40] = stored[40]! ^ 1;
    await writeFile(files.fileOf('key'), stored);
    expect(await files.read('key')).toBeUndefined();
    expect(warnings.join('\n')).toMatch(/is damaged \(checksum mismatch\): deleted, reading it again/);
    await expect(readFile(files.fileOf('key'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(warnings).toHaveLength(1);
  });
});
