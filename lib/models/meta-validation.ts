/**
 * Validating a model.json against its schema with errors a person can act on: the file and the field, and for an
 * unknown key (a typo such as `preprocesing`) the key by name and the field it was probably meant to be.
 */
import type { z } from 'zod';
import { InvalidModel } from '../shared/errors';
import { modelMetaSchema, type ModelMeta } from './model-meta';

/** Which device and file a model.json is, for the error it throws. */
interface MetaContext {
  device: string;
  file: string;
}

/** Parses `value` as a model.json; throws `InvalidModel` naming the file and field of the first problem. */
export function parseMeta(value: unknown, context: MetaContext): ModelMeta {
  const parsed = modelMetaSchema.safeParse(value);
  if (!parsed.success) {
    const { field, message } = describeIssue(parsed.error.issues[0]);
    throw new InvalidModel(`${context.file}: ${field ?? 'model.json'}: ${message}`, { ...context, field });
  }
  const meta = parsed.data;
  if (meta.preprocessing.type === 'standardize' && meta.preprocessing.scale.some((s) => s === 0)) {
    throw new InvalidModel(`${context.file}: preprocessing.scale must not contain 0`, {
      ...context,
      field: 'preprocessing.scale',
    });
  }
  return meta;
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
