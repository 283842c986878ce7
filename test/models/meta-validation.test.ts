/**
 * A model.json is checked first by a plain check (plainMeta) and by the schema when that check does not recognise
 * it: the result must be the schema's own, on valid documents and on thousands of altered ones, and what
 * registration writes must take the plain check.
 */
import { modelMetaSchema } from '../../lib/models/model-meta';
import { parseMeta, plainMeta } from '../../lib/models/meta-validation';
import { twoFeatureMeta } from '../support/model-files';
import { random } from '../support/random';

/** A stored model.json: what a user writes, and what registration adds. */
const base = {
  ...twoFeatureMeta,
  schema: 'fleetscore.model/v1',
  device: 'pump-1',
  version: 'v0001',
  sha256: 'ab'.repeat(32),
  createdAt: '2026-12-05T00:00:00Z',
};
const documents: Record<string, unknown>[] = [
  base,
  {
    ...base,
    pool: 'gpu',
    output: { name: 'recon', column: 0, reconstructionError: 'mae' },
    anomalyWhen: 'above',
    preprocessing: { type: 'standardize', mean: [1, -2.5], scale: [0.5, 3] },
    algorithm: 'pca',
    source: 'skl2onnx',
  },
  { ...base, output: { name: 'probabilities', column: 1 }, preprocessing: { type: 'none' } },
  { ...base, missingValues: 'model' },
  { ...base, output: { name: 'scores', reduce: 'min' }, anomalyWhen: 'above' },
];

/** Values a field is replaced with: each type, empty ones, near misses of the valid ones. */
const VALUES: unknown[] = [
  undefined,
  null,
  true,
  0,
  -1,
  1,
  1.5,
  2 ** 53,
  Infinity,
  NaN,
  '',
  'x',
  'cpu',
  'gpu',
  'CPU',
  'mse',
  'mae',
  'above',
  'below',
  'none',
  'standardize',
  'fail',
  'model',
  'min',
  'max',
  'fleetscore.model/v1',
  'ab'.repeat(32),
  'AB'.repeat(32),
  'ab'.repeat(31),
  [],
  [''],
  ['a'],
  ['a', 'b'],
  ['a', 'b', 'c'],
  [0, 1],
  [1, 0],
  [1, Infinity],
  [1, '2'],
  {},
  { name: 'X' },
  { name: '' },
  { type: 'none' },
  { type: 'none', mean: [1, 2] },
  { type: 'standardize', mean: [0, 0], scale: [1, 1] },
  { type: 'standardize', mean: [0], scale: [1] },
  { type: 'other' },
  { name: 'Y', column: 2 },
  { name: 'Y', reconstructionError: 'mse' },
  { name: 'Y', column: 1, reconstructionError: 'mse' },
  { name: 'Y', reduce: 'max' },
  { name: 'Y', column: 1, reduce: 'min' },
  { name: 'Y', reduce: 'min', reconstructionError: 'mae' },
  { name: 'Y', reduce: 'sum' },
  { name: 'Y', column: -1 },
  { name: 'Y', column: 0.5 },
  { name: 'Y', extra: 1 },
];

/** `doc` with one change at a random path: a field replaced or removed, or a key added. */
function altered(doc: Record<string, unknown>, rand: () => number): Record<string, unknown> {
  const copy = structuredClone(doc);
  let target: Record<string, unknown> = copy;
  const nested = Object.entries(copy).filter(([, v]) => typeof v === 'object' && v !== null && !Array.isArray(v));
  if (nested.length > 0 && rand() < 0.4) target = nested[Math.floor(rand() * nested.length)]![1] as typeof target;
  const keys = Object.keys(target);
  const roll = rand();
  // An own "__proto__" key, as JSON.parse makes one.
  if (roll < 0.1)
    Object.defineProperty(target, rand() < 0.5 ? 'preprocesing' : '__proto__', { value: 1, enumerable: true });
  else if (roll < 0.25) delete target[keys[Math.floor(rand() * keys.length)]!];
  else target[keys[Math.floor(rand() * keys.length)]!] = structuredClone(VALUES[Math.floor(rand() * VALUES.length)]);
  return copy;
}

/** What parseMeta gives (the schema, then its own rule: no scale of 0): the document as JSON, or the error's message. */
function outcome(value: unknown): { ok: string } | { error: string } {
  try {
    return { ok: JSON.stringify(parseMeta(value, { device: 'pump-1', file: 'model.json' })) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

it('gives what the schema gives, with its keys in order, for valid and for thousands of altered documents', () => {
  const rand = random(17);
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i < 6000; i++) {
    const doc = documents[i % documents.length]!;
    const value = i < documents.length ? doc : altered(i % 3 === 0 ? altered(doc, rand) : doc, rand);
    const schema = modelMetaSchema.safeParse(value);
    const got = outcome(value);
    const zeroScale =
      schema.success && schema.data.preprocessing.type === 'standardize' && schema.data.preprocessing.scale.includes(0);
    if (schema.success && !zeroScale) {
      accepted++;
      expect(got).toEqual({ ok: JSON.stringify(schema.data) });
    } else {
      refused++;
      expect(got).toHaveProperty('error');
    }
  }
  // Both kinds were exercised.
  expect(accepted).toBeGreaterThan(500);
  expect(refused).toBeGreaterThan(2000);
});

it('takes the plain check for what registration writes, and leaves the rest to the schema', () => {
  for (const doc of documents) {
    const written = JSON.parse(JSON.stringify(modelMetaSchema.parse(doc))) as unknown;
    expect(plainMeta(written)).toEqual(modelMetaSchema.parse(doc));
  }
  expect(plainMeta({ ...base, preprocesing: { type: 'none' } })).toBeUndefined();
  expect(() => parseMeta({ ...base, preprocesing: { type: 'none' } }, { device: 'pump-1', file: 'f.json' })).toThrow(
    /f\.json: preprocesing: unknown key "preprocesing"; did you mean "preprocessing"\?/,
  );
  expect(() => parseMeta({ ...base, threshold: Infinity }, { device: 'pump-1', file: 'f.json' })).toThrow(
    /f\.json: threshold: .*Infinity/,
  );
});

it('refuses a reduce with a column or a reconstruction error, naming the field', () => {
  const context = { device: 'pump-1', file: 'f.json' };
  expect(() => parseMeta({ ...base, output: { name: 'scores', column: 2, reduce: 'min' } }, context)).toThrow(
    /f\.json: output\.column: a row is reduced across its columns: column must be 0 with reduce/,
  );
  const reconstruction = { name: 'recon', reduce: 'max', reconstructionError: 'mse' };
  expect(() => parseMeta({ ...base, output: reconstruction }, context)).toThrow(
    /f\.json: output\.reduce: a reconstruction is scored by its error/,
  );
  expect(() => parseMeta({ ...base, output: { name: 'scores', reduce: 'sum' } }, context)).toThrow(
    /f\.json: output\.reduce: .*"min".*"max"/,
  );
});
