/**
 * Validating a model.json against its schema with errors a person can act on: the file and the field, and for an
 * unknown key (a typo such as `preprocesing`) the key by name and the field it was probably meant to be.
 *
 * A cold run reads every device's model.json, and the schema's parse cost 14 µs a file on average over a thread's
 * first 5,000 (70 µs for the first hundred, while V8 still runs it unoptimised). So a plain model.json, the form
 * registration writes, is checked by {@link plainMeta} first (2.3 µs a file over the same 5,000); anything it does not
 * recognise as plainly valid goes to the schema, which accepts or names the problem. Where both accept, they give
 * the same value, keys in the same order (test/models/meta-validation.test.ts compares them on thousands of altered
 * documents).
 */
import type { z } from 'zod';
import { InvalidModel } from '../shared/errors';
import { isPool } from '../shared/names';
import { modelMetaSchema, SHA256_HEX, type ModelMeta } from './model-meta';

/** Which device and file a model.json is, for the error it throws. */
interface MetaContext {
  device: string;
  file: string;
}

/** Parses `value` as a model.json; throws `InvalidModel` naming the file and field of the first problem. */
export function parseMeta(value: unknown, context: MetaContext): ModelMeta {
  const meta = plainMeta(value) ?? schemaMeta(value, context);
  if (meta.preprocessing.type === 'standardize' && meta.preprocessing.scale.some((s) => s === 0)) {
    throw new InvalidModel(`${context.file}: preprocessing.scale must not contain 0`, {
      ...context,
      field: 'preprocessing.scale',
    });
  }
  return meta;
}

/** `value` parsed by the schema; throws `InvalidModel` naming the file and field of the first problem. */
function schemaMeta(value: unknown, context: MetaContext): ModelMeta {
  const parsed = modelMetaSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const { field, message } = describeIssue(parsed.error.issues[0]);
  throw new InvalidModel(`${context.file}: ${field ?? 'model.json'}: ${message}`, { ...context, field });
}

type Fields = Record<string, unknown>;

/** An object (not an array) holding only `allowed` keys, or undefined. */
function fieldsOf(value: unknown, allowed: ReadonlySet<string>): Fields | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  for (const key of Object.keys(value)) if (!allowed.has(key)) return undefined;
  return value as Fields;
}

const META_KEYS = new Set(Object.keys(modelMetaSchema.shape));
const INPUT_KEYS = new Set(['name']);
const OUTPUT_KEYS = new Set(['name', 'column', 'reconstructionError', 'reduce']);
const NONE_KEYS = new Set(['type']);
const STANDARDIZE_KEYS = new Set(['type', 'mean', 'scale']);

const isText = (v: unknown): v is string => typeof v === 'string';
const isName = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const allOf = <T>(v: unknown, is: (x: unknown) => x is T): v is T[] => Array.isArray(v) && v.every((x) => is(x));
/** An optional field with a default: absent, or present and of its type. */
const orAbsent = <T>(v: unknown, is: (x: unknown) => x is T): v is T | undefined => v === undefined || is(v);

/**
 * The model.json `value` is, when it is plainly what the schema accepts (its value then equals the schema's:
 * defaults filled in, objects and arrays new, keys in the schema's order); undefined for anything else, including
 * whatever the schema would refuse, so that the schema names the problem.
 */
export function plainMeta(value: unknown): ModelMeta | undefined {
  const m = fieldsOf(value, META_KEYS);
  const input = fieldsOf(m?.input, INPUT_KEYS);
  const output = fieldsOf(m?.output, OUTPUT_KEYS);
  if (!m || !input || !output) return undefined;
  const { preprocessing: p = { type: 'none' }, features } = m;
  const pre = fieldsOf(p, (p as Fields | undefined)?.type === 'standardize' ? STANDARDIZE_KEYS : NONE_KEYS);
  // Defaults stand in for absent fields only: null is a value, and the schema refuses it.
  const column = output.column === undefined ? 0 : output.column;
  const error = output.reconstructionError;
  const reduce = output.reduce;
  if (
    m.schema !== 'fleetscore.model/v1' ||
    !isText(m.device) ||
    !isText(m.version) ||
    !isPool(m.pool) ||
    !allOf(features, isName) ||
    features.length === 0 ||
    !isName(input.name) ||
    !isName(output.name) ||
    !(typeof column === 'number' && Number.isSafeInteger(column) && column >= 0) ||
    !(error === undefined || error === 'mse' || error === 'mae') ||
    (error !== undefined && column !== 0) ||
    !(reduce === undefined || reduce === 'min' || reduce === 'max') ||
    (reduce !== undefined && (column !== 0 || error !== undefined)) ||
    !(m.anomalyWhen === 'above' || m.anomalyWhen === 'below') ||
    !isFiniteNumber(m.threshold) ||
    !pre ||
    !(m.missingValues === undefined || m.missingValues === 'fail' || m.missingValues === 'model') ||
    !isText(m.sha256) ||
    !SHA256_HEX.test(m.sha256) ||
    !orAbsent(m.algorithm, isText) ||
    !isText(m.createdAt) ||
    !orAbsent(m.source, isText)
  )
    return undefined;
  let preprocessing: ModelMeta['preprocessing'];
  if (pre.type === 'none') preprocessing = { type: 'none' };
  else {
    const { mean, scale } = pre;
    if (!allOf(mean, isFiniteNumber) || !allOf(scale, isFiniteNumber)) return undefined;
    if (mean.length !== features.length || scale.length !== features.length) return undefined;
    preprocessing = { type: 'standardize', mean: mean.slice(), scale: scale.slice() };
  }
  return {
    schema: m.schema,
    device: m.device,
    version: m.version,
    pool: m.pool,
    features: features.slice(),
    input: { name: input.name },
    output: {
      name: output.name,
      column,
      ...(error === undefined ? {} : { reconstructionError: error }),
      ...(reduce === undefined ? {} : { reduce }),
    },
    anomalyWhen: m.anomalyWhen,
    threshold: m.threshold,
    preprocessing,
    missingValues: m.missingValues === undefined ? 'fail' : m.missingValues,
    sha256: m.sha256,
    algorithm: m.algorithm === undefined ? 'unknown' : m.algorithm,
    createdAt: m.createdAt,
    source: m.source === undefined ? 'unknown' : m.source,
  };
}

/** The field an issue is about (dotted path) and what to say; an unknown key is named as the field itself. */
function describeIssue(issue: z.core.$ZodIssue | undefined): { field: string | undefined; message: string } {
  if (!issue) return { field: undefined, message: 'invalid' };
  const path = issue.path.map(String);
  if (issue.code !== 'unrecognized_keys') {
    return { field: path.join('.') || undefined, message: issue.message };
  }
  const key = issue.keys[0] ?? '';
  const guess = closest(key, KNOWN_KEYS);
  const others =
    issue.keys.length > 1
      ? ` (and ${issue.keys
          .slice(1)
          .map((k) => JSON.stringify(k))
          .join(', ')})`
      : '';
  const hint = guess === undefined ? '' : `; did you mean ${JSON.stringify(guess)}?`;
  return {
    field: [...path, key].join('.'),
    message: `unknown key ${JSON.stringify(key)}${others}${hint} (see docs/data-and-models.md for the fields)`,
  };
}

/** Every key a model.json may hold at any level, the candidates for a typo's correction. */
const KNOWN_KEYS = [
  ...Object.keys(modelMetaSchema.shape),
  ...Object.keys(modelMetaSchema.shape.input.shape),
  ...Object.keys(modelMetaSchema.shape.output.shape),
  'type',
  'mean',
  'scale',
];

/** The candidate within edit distance 2 of `word` (case-insensitive), the nearest first; none when none is near. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of new Set(candidates)) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}
