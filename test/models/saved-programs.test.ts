/**
 * Saved programs: a forest's program compiled by one worker is read by the next from the host's folder instead of
 * compiled again, and scores the same bit for bit; small models are not saved; a damaged, misplaced or unreadable
 * file is reported and compiled again, never evaluated; a folder that cannot be written costs a warning, never a
 * result; a sweep deletes what was not read for a week and what dead writers left.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { compileModel } from '../../lib/models/fast-paths/compile-model';
import { CompiledModels, PROTECTED_MS } from '../../lib/models/fast-paths/compiled-models';
import { linkProgram } from '../../lib/models/fast-paths/graph-evaluator';
import { MAX_AGE_MS } from '../../lib/kept-files';
import { compilerFingerprint, SavedPrograms, sweepSavedPrograms } from '../../lib/models/fast-paths/saved-programs';
import { random } from '../support/random';
import { sklearnFixture } from '../support/sklearn-cases';

const rand = random(11);
const x = Float32Array.from({ length: 40 * 4 }, () => rand() * 4 - 2);
const forest = new Uint8Array(sklearnFixture('isoforest', 'model.onnx'));
const svm = new Uint8Array(sklearnFixture('ocsvm', 'model.onnx'));

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fleetscore-programs-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

/** The scores of `bytes` compiled directly, here. */
function direct(bytes: Uint8Array): Float32Array {
  const result = compileModel(bytes, 'X', 'scores', 4);
  if (!('program' in result)) throw new Error(result.unsupported);
  return Float32Array.from(linkProgram(result.program).run(x, 40, 4).data);
}

/** A worker's cache of programs over `dir` (every model large enough to save unless `saveMinBytes`). */
function worker(warnings: string[] = [], saveMinBytes = 0) {
  const saved = new SavedPrograms(dir, { warn: (m) => warnings.push(m) });
  return { saved, cache: new CompiledModels({ threads: 0, saved, saveMinBytes }) };
}

async function score(cache: CompiledModels, key: string, bytes: Uint8Array) {
  const found = await cache.get(key, () => Promise.resolve(bytes), 'X', 'scores', 4);
  if (!found) throw new Error(`${key} was refused: ${cache.refusal(key)}`);
  return { origin: found.origin, scores: Float32Array.from(found.linked.run(x, 40, 4).data) };
}

/** Every program file under `dir`. */
async function files(): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else found.push(join(d, e.name));
    }
  };
  await walk(dir);
  return found;
}

it('compiles a forest once: the next worker reads its program, which scores the same bit for bit', async () => {
  const first = worker();
  expect(await score(first.cache, 'forest', forest)).toEqual({ origin: 'compiled', scores: direct(forest) });
  expect(first.saved.stats).toEqual({ read: 0, written: 1, damaged: 0 });
  expect(await files()).toEqual([first.saved.fileOf('forest')]);
  expect(first.saved.fileOf('forest')).toContain(`/${compilerFingerprint()}/`);
  await first.cache.close();

  const warnings: string[] = [];
  const next = worker(warnings);
  expect(await score(next.cache, 'forest', forest)).toEqual({ origin: 'saved', scores: direct(forest) });
  expect(await score(next.cache, 'forest', forest)).toMatchObject({ origin: 'cached' });
  expect(next.saved.stats).toEqual({ read: 1, written: 0, damaged: 0 });
  // Another model (another key) is not answered by this file.
  expect(await score(next.cache, 'forest-2', forest)).toMatchObject({ origin: 'compiled' });
  expect(warnings).toEqual([]);
  await next.cache.close();
});

it('defers saves when asked: oldest first when told, the rest on close, and the next worker reads them', async () => {
  const saved = new SavedPrograms(dir);
  const cache = new CompiledModels({ threads: 0, saved, saveMinBytes: 0, deferSaves: true });
  expect(await score(cache, 'a', forest)).toEqual({ origin: 'compiled', scores: direct(forest) });
  expect(await score(cache, 'b', forest)).toMatchObject({ origin: 'compiled' });
  expect(await files()).toEqual([]);
  expect(cache.unsavedCount).toBe(2);
  expect(await cache.saveDeferred(1)).toBe(1);
  expect(await files()).toEqual([saved.fileOf('a')]);
  await cache.close();
  expect((await files()).sort()).toEqual([saved.fileOf('a'), saved.fileOf('b')].sort());
  expect(saved.stats).toEqual({ read: 0, written: 2, damaged: 0 });
  const next = worker();
  expect(await score(next.cache, 'b', forest)).toEqual({ origin: 'saved', scores: direct(forest) });
});

it('saves a deferred program when it is evicted, and one the cache does not hold at once', async () => {
  let now = 0;
  // Synchronous, as on a shard thread: an evicted program's file is written before the compile that evicted it ends.
  const saved = new SavedPrograms(dir, { blocking: true });
  // Room for one program: the first is held, the next (while the first is protected) is not.
  const cache = new CompiledModels({
    threads: 0,
    saved,
    saveMinBytes: 0,
    deferSaves: true,
    maxBytes: 1,
    now: () => now,
  });
  await score(cache, 'held', forest);
  await score(cache, 'not-held', forest);
  expect(await files()).toEqual([saved.fileOf('not-held')]);
  now = PROTECTED_MS + 1;
  // This one evicts the first, which is saved as it goes.
  await score(cache, 'evicting', forest);
  expect((await files()).sort()).toEqual([saved.fileOf('not-held'), saved.fileOf('held')].sort());
  expect(cache.unsavedCount).toBe(1);
  await cache.close();
  expect(await files()).toHaveLength(3);
});

it('does not save small models: they compile faster than a file is read', async () => {
  const { saved, cache } = worker([], 64 * 1024);
  expect(svm.length).toBeLessThan(64 * 1024);
  expect(await score(cache, 'svm', svm)).toEqual({ origin: 'compiled', scores: direct(svm) });
  expect(saved.stats.written).toBe(0);
  expect(await files()).toEqual([]);
});

it.each([
  ['a flipped byte', (b: Buffer) => (b.writeUInt8(b.readUInt8(b.length - 10) ^ 0xff, b.length - 10), b), /checksum/],
  ['a truncated file', (b: Buffer) => b.subarray(0, 20), /damaged \(not a saved program\)/],
  ['another file', (b: Buffer) => b.fill(7), /damaged \(not a saved program\)/],
] as const)('reports %s, deletes it and compiles again', async (_, damage, reason) => {
  const first = worker();
  await score(first.cache, 'forest', forest);
  const file = first.saved.fileOf('forest');
  const bytes = await readFile(file);
  await writeFile(file, damage(bytes));

  const warnings: string[] = [];
  const next = worker(warnings);
  expect(await score(next.cache, 'forest', forest)).toEqual({ origin: 'compiled', scores: direct(forest) });
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain(file);
  expect(warnings[0]).toMatch(reason);
  expect(next.saved.stats).toEqual({ read: 0, written: 1, damaged: 1 });
  // Saved again, whole: a third worker reads it.
  expect(await score(worker().cache, 'forest', forest)).toMatchObject({ origin: 'saved' });
});

it('refuses a file saved for another model under this name', async () => {
  const first = worker();
  await score(first.cache, 'forest', forest);
  const other = new SavedPrograms(dir);
  await mkdir(dirname(other.fileOf('forest-b')), { recursive: true });
  await writeFile(other.fileOf('forest-b'), await readFile(first.saved.fileOf('forest')));
  const warnings: string[] = [];
  expect(await worker(warnings).cache.get('forest-b', () => Promise.resolve(forest), 'X', 'scores', 4)).toMatchObject({
    origin: 'compiled',
  });
  expect(warnings[0]).toMatch(/damaged \(saved for another model\)/);
});

it('scores with a warning when the folder cannot be written', async () => {
  // A file where the folder should be: nothing can be created under it, whoever runs the test.
  await writeFile(join(dir, 'not-a-folder'), '');
  const warnings: string[] = [];
  const saved = new SavedPrograms(join(dir, 'not-a-folder'), { warn: (m) => warnings.push(m) });
  const cache = new CompiledModels({ threads: 0, saved, saveMinBytes: 0 });
  expect(await score(cache, 'forest', forest)).toEqual({ origin: 'compiled', scores: direct(forest) });
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatch(/saved program could not be written to .*not-a-folder.*: it is compiled again next time/);
  expect(saved.stats.written).toBe(0);
  // Every later problem within the minute is counted, not written: ten thousand forests make one line.
  await score(cache, 'forest-2', forest);
  await score(cache, 'forest-3', forest);
  expect(warnings).toHaveLength(1);
});

it('warns at most once a minute, then with the count of problems since', async () => {
  let now = 0;
  const warnings: string[] = [];
  const saved = new SavedPrograms(join(dir, 'x'), { warn: (m) => warnings.push(m), now: () => now });
  await writeFile(join(dir, 'x'), '');
  const program = compileModel(forest, 'X', 'scores', 4);
  if (!('program' in program)) throw new Error(program.unsupported);
  for (let i = 0; i < 4; i++) await saved.write(`k${i}`, program.program);
  now += 61_000;
  await saved.write('k4', program.program);
  expect(warnings).toHaveLength(2);
  expect(warnings[1]).toMatch(/\(and 3 more problems with saved programs since the last\)$/);
});

it('reports a file it cannot read and compiles the model', async () => {
  const { saved } = worker();
  // A folder where the file should be: it opens, but its bytes cannot be read (EISDIR), whoever runs the test.
  await mkdir(saved.fileOf('forest'), { recursive: true });
  const warnings: string[] = [];
  expect(await score(worker(warnings).cache, 'forest', forest)).toMatchObject({ origin: 'compiled' });
  expect(warnings[0]).toMatch(/saved program .* could not be read \(EISDIR.*\): compiling/);
});

it('sweeps files not read for a week, temporary files of dead writers and empty folders', async () => {
  const now = Date.now();
  const day = 24 * 3_600_000;
  const { saved, cache } = worker();
  await score(cache, 'old', forest);
  await score(cache, 'recent', forest);
  await score(cache, 'read-lately', forest);
  const at = (file: string, ms: number) => utimes(file, new Date(ms), new Date(ms));
  await at(saved.fileOf('old'), now - MAX_AGE_MS - day);
  await at(saved.fileOf('recent'), now - day);
  // Written eight days ago, read today: the read refreshes its time, so the sweep keeps it.
  await at(saved.fileOf('read-lately'), now - MAX_AGE_MS - day);
  expect(await score(worker().cache, 'read-lately', forest)).toMatchObject({ origin: 'saved' });
  expect((await stat(saved.fileOf('read-lately'))).mtimeMs).toBeGreaterThan(now - 60_000);
  const deadTemp = `${saved.fileOf('recent')}.999-0-0.tmp`;
  await writeFile(deadTemp, 'half');
  await at(deadTemp, now - 2 * 3_600_000);

  const result = await sweepSavedPrograms(dir, { now: () => now });
  expect(result.deleted).toBe(2);
  expect(result.kept).toBe(2);
  expect((await files()).sort()).toEqual([saved.fileOf('read-lately'), saved.fileOf('recent')].sort());
  // Folders left empty are removed; the folder itself stays.
  await sweepSavedPrograms(dir, { now: () => now + 2 * MAX_AGE_MS });
  expect(await readdir(dir)).toEqual([]);
  expect(await sweepSavedPrograms(join(dir, 'never-made'))).toEqual({ deleted: 0, kept: 0, keptBytes: 0 });
});

it('reads the same way synchronously, as on a shard thread: programs, damage, errors and last uses', async () => {
  const first = worker();
  await score(first.cache, 'forest', forest);
  await score(first.cache, 'damaged', forest);
  const old = Date.now() - 3 * 24 * 3_600_000;
  await utimes(first.saved.fileOf('forest'), new Date(old), new Date(old));
  const damaged = await readFile(first.saved.fileOf('damaged'));
  await writeFile(first.saved.fileOf('damaged'), damaged.subarray(0, damaged.length - 1));
  await mkdir(first.saved.fileOf('unreadable'), { recursive: true });

  const warnings: string[] = [];
  const saved = new SavedPrograms(dir, { warn: (m) => warnings.push(m), blocking: true });
  const cache = new CompiledModels({ threads: 0, saved, saveMinBytes: 0 });
  expect(await score(cache, 'forest', forest)).toEqual({ origin: 'saved', scores: direct(forest) });
  expect((await stat(saved.fileOf('forest'))).mtimeMs).toBeGreaterThan(Date.now() - 60_000);
  expect(await score(cache, 'damaged', forest)).toMatchObject({ origin: 'compiled' });
  expect(warnings).toEqual([expect.stringMatching(/damaged \(checksum mismatch\)/)]);
  const next = new SavedPrograms(dir, { warn: (m) => warnings.push(m), blocking: true });
  expect(await next.read('unreadable')).toBeUndefined();
  expect(warnings[1]).toMatch(/could not be read \(EISDIR/);
  expect(await next.read('never-saved')).toBeUndefined();
  expect(warnings).toHaveLength(2);
});

it.each([false, true])(
  'makes the folders it writes to, also after a sweep removed them (blocking: %s)',
  async (blocking) => {
    const warnings: string[] = [];
    const saved = new SavedPrograms(join(dir, 'not-yet'), { warn: (m) => warnings.push(m), blocking });
    const cache = new CompiledModels({ threads: 0, saved, saveMinBytes: 0 });
    expect(await score(cache, 'first', forest)).toMatchObject({ origin: 'compiled' });
    await rm(join(dir, 'not-yet'), { recursive: true });
    expect(await score(cache, 'second', forest)).toMatchObject({ origin: 'compiled' });
    expect(await stat(saved.fileOf('second'))).toBeTruthy();
    expect(saved.stats.written).toBe(2);
    expect(warnings).toEqual([]);
    const next = new CompiledModels({ threads: 0, saved, saveMinBytes: 0 });
    expect(await score(next, 'second', forest)).toEqual({ origin: 'saved', scores: direct(forest) });
  },
);
