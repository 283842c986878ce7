/**
 * The compiled-programs cache compiles a small model on the calling thread and anything with a forest's node count
 * on a compile thread (a forest never compiles on the event loop's thread, issue 10), with the same programs either
 * way; bytes that are no model are refused with the reason, on the calling thread; a fleet larger than the byte
 * budget keeps the same programs compiled from hour to hour; a program counts about the memory it really holds.
 */
import { execFileSync } from 'node:child_process';
import { compileModel } from '../../lib/models/fast-paths/compile-model';
import { compileGraph } from '../../lib/models/fast-paths/graph-program';
import { linkProgram } from '../../lib/models/fast-paths/graph-evaluator';
import { CompiledModels, INLINE_MAX_BYTES } from '../../lib/models/fast-paths/compiled-models';
import { random } from '../support/random';
import { sklearnFixture } from '../support/sklearn-cases';

const rand = random(3);
const x = Float32Array.from({ length: 40 * 4 }, () => rand() * 4 - 2);

/** The scores of `bytes` compiled directly, here. */
function direct(bytes: Uint8Array): Float32Array {
  const result = compileModel(bytes, 'X', 'scores', 4);
  if (!('program' in result)) throw new Error(result.unsupported);
  return Float32Array.from(linkProgram(result.program).run(x, 40, 4).data);
}

it('compiles an SVM on the calling thread and a forest on a compile thread', async () => {
  const cache = new CompiledModels({ threads: 1 });
  try {
    const svm = new Uint8Array(sklearnFixture('ocsvm', 'model.onnx'));
    const forest = new Uint8Array(sklearnFixture('isoforest', 'model.onnx'));
    // Under the byte limit, but a forest's node count: compiled on a thread all the same.
    expect(forest.length).toBeLessThan(INLINE_MAX_BYTES);

    const svmProgram = await cache.get('svm', () => Promise.resolve(svm), 'X', 'scores', 4);
    expect(cache.threadsRunning).toBe(0);
    expect(svmProgram?.linked.program.family).toBe('svm');
    expect(svmProgram?.origin).toBe('compiled');
    expect(Float32Array.from(svmProgram!.linked.run(x, 40, 4).data)).toEqual(direct(svm));

    const forestProgram = await cache.get('forest', () => Promise.resolve(forest), 'X', 'scores', 4);
    expect(cache.threadsRunning).toBe(1);
    expect(forestProgram?.linked.program.family).toBe('tree-ensemble');
    expect(Float32Array.from(forestProgram!.linked.run(x, 40, 4).data)).toEqual(direct(forest));
    expect((await cache.get('forest', () => Promise.reject(new Error('read')), 'X', 'scores', 4))?.origin).toBe(
      'cached',
    );

    expect(
      await cache.get('junk', () => Promise.resolve(new Uint8Array([8, 1, 255])), 'X', 'scores', 4),
    ).toBeUndefined();
    expect(cache.refusal('junk')).toMatch(/UnsupportedGraph/);
    expect(cache.threadsRunning).toBe(1);
  } finally {
    await cache.close();
  }
});

it('compiles a tree classifier on a compile thread, though its forest is one node under the byte limit', async () => {
  const cache = new CompiledModels({ threads: 1 });
  try {
    const boosted = new Uint8Array(sklearnFixture('xgboost-classifier', 'model.onnx'));
    expect(boosted.length).toBeLessThan(INLINE_MAX_BYTES);
    const program = await cache.get('xgb', () => Promise.resolve(boosted), 'input', 'probabilities', 4);
    expect(cache.threadsRunning).toBe(1);
    const here = compileModel(boosted, 'input', 'probabilities', 4);
    if (!('program' in here)) throw new Error(here.unsupported);
    expect(program!.linked.run(x, 40, 4).data).toEqual(linkProgram(here.program).run(x, 40, 4).data);
  } finally {
    await cache.close();
  }
});

it('keeps the programs an hourly run used when more come than fit, and makes room once they are an hour old', async () => {
  let now = Date.parse('2026-11-21T11:00Z');
  const svm = new Uint8Array(sklearnFixture('ocsvm', 'model.onnx'));
  const result = compileModel(svm, 'X', 'scores', 4);
  if (!('program' in result)) throw new Error(result.unsupported);
  // Room for two programs: four models scored in the same order every hour.
  const cache = new CompiledModels({ threads: 0, maxBytes: 2.5 * result.program.bytes, now: () => now });
  const loads: string[] = [];
  const hour = async (models: string[]) => {
    for (const key of models) {
      const program = await cache.get(key, () => (loads.push(key), Promise.resolve(svm)), 'X', 'scores', 4);
      expect(Float32Array.from(program!.linked.run(x, 40, 4).data)).toEqual(direct(svm));
      now += 60_000;
    }
  };
  try {
    await hour(['a', 'b', 'c', 'd']);
    expect(loads).toEqual(['a', 'b', 'c', 'd']);
    // A plain LRU would hold c and d now, lose each before its turn, and compile all four again.
    now += 56 * 60_000;
    await hour(['a', 'b', 'c', 'd']);
    expect(loads.slice(4)).toEqual(['c', 'd']);
    expect(cache.heldBytes).toBe(2 * result.program.bytes);

    // New models (retrained) replace the ones no run has used for an hour.
    now += 56 * 60_000;
    await hour(['e', 'f']);
    await hour(['e', 'f']);
    expect(loads.slice(6)).toEqual(['e', 'f']);
  } finally {
    await cache.close();
  }
});

it.each([
  ['lof', 'X', 'scores'],
  ['ocsvm', 'X', 'scores'],
  ['isoforest', 'X', 'scores'],
  ['autoencoder', 'input', 'reconstruction'],
])('counts a compiled %s program at the memory it holds once linked, within a quarter', (fixture, input, output) => {
  // 1,000 programs kept in a process of their own, measured after full collections (test/support/program-memory.ts).
  const line = execFileSync(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', 'test/support/program-memory.ts', fixture, input, output, '1000'],
    { encoding: 'utf8' },
  );
  const { counted, real } = JSON.parse(line) as { counted: number; real: number };
  expect(counted / real).toBeGreaterThan(0.75);
  expect(counted / real).toBeLessThan(1.25);
});

/** Every typed array a value refers to (through arrays, maps and plain objects), each once. */
function typedArrays(
  value: unknown,
  found = new Set<ArrayBufferView>(),
  seen = new Set<object>(),
): Set<ArrayBufferView> {
  if (value === null || typeof value !== 'object' || seen.has(value)) return found;
  seen.add(value);
  if (ArrayBuffer.isView(value)) found.add(value);
  else if (value instanceof Map) for (const [k, v] of value) typedArrays(v, typedArrays(k, found, seen), seen);
  else for (const v of Object.values(value)) typedArrays(v, found, seen);
  return found;
}

it.each([
  ['autoencoder', 'input', 'reconstruction'],
  ['isoforest', 'X', 'scores'],
  ['isoforest-pipeline', 'X', 'scores'],
  ['lof', 'X', 'scores'],
  ['ocsvm', 'X', 'scores'],
  ['ocsvm-pipeline', 'X', 'scores'],
  ['ocsvm-poly', 'X', 'scores'],
  ['pca-reconstruction', 'X', 'reconstruction'],
])('a compiled %s program holds no view of the buffers its model was read into', (fixture, input, output) => {
  // The reader puts a model's number lists in a few shared buffers (NumberArena): an operator that kept a view of
  // one would hold the whole buffer, which the program's byte count does not see. Fused and node by node (where a
  // forest keeps each tree's arrays and tables), each buffer the program refers to is nearly all its own views.
  const bytes = new Uint8Array(sklearnFixture(fixture, 'model.onnx'));
  for (const fuse of [true, false]) {
    const views = typedArrays(compileGraph(bytes, input, output, fuse));
    const held = new Map<ArrayBufferLike, number>();
    for (const v of views) held.set(v.buffer, (held.get(v.buffer) ?? 0) + v.byteLength);
    expect(held.size).toBeGreaterThan(0);
    for (const [buffer, bytesHeld] of held) expect(bytesHeld / buffer.byteLength).toBeGreaterThanOrEqual(0.9);
  }
});
