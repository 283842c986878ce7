/**
 * The model contract: `model.json` beside every `model.onnx`, and `models/index.json` that points each device
 * at one immutable version. Both are data, validated on every read.
 */
import { z } from 'zod';
import { isPool } from '../shared/names';

const finite = z.number().refine(Number.isFinite, 'must be a finite number');

/** A sha256 as model.json and the index write it: 64 lowercase hex digits. */
export const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Feature preprocessing applied in TypeScript before inference (models may also bake it into the graph). */
export const preprocessingSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('none') }),
  z.strictObject({ type: z.literal('standardize'), mean: z.array(finite), scale: z.array(finite) }),
]);

/** `model.json`: how to feed a model and how to read its score. Strict: an unknown key (a typo) is refused by name. */
export const modelMetaSchema = z
  .strictObject({
    schema: z.literal('fleetscore.model/v1'),
    device: z.string(),
    version: z.string(),
    pool: z
      .string()
      .refine(isPool, 'must be "cpu" or "gpu"')
      .transform((p) => p),
    /** Column names of the aggregates, in the order of the model's input features. */
    features: z.array(z.string().min(1)).min(1),
    /** The float32 input tensor of shape [rows, features.length]. */
    input: z.strictObject({ name: z.string().min(1) }),
    /** The output holding the score: shape [rows] or [rows, k], in which case `column` (or `reduce`) picks it. */
    output: z.strictObject({
      name: z.string().min(1),
      column: z.number().int().min(0).default(0),
      /**
       * The output is a reconstruction of the (preprocessed) input, [rows, features.length], and the score is
       * its per-row mean squared (`mse`) or mean absolute (`mae`) error: autoencoders and PCA as exported.
       */
      reconstructionError: z.enum(['mse', 'mae']).optional(),
      /**
       * The score is the smallest (`min`) or largest (`max`) value of each row across the output's columns: a
       * KMeans' distance to the nearest centroid from its distances to each, as skl2onnx exports them.
       */
      reduce: z.enum(['min', 'max']).optional(),
    }),
    /** Whether a row is anomalous when its score is above or below the threshold. */
    anomalyWhen: z.enum(['above', 'below']),
    threshold: finite,
    preprocessing: preprocessingSchema.default({ type: 'none' }),
    /**
     * What a NaN or null feature value does: fail the device, or reach the model as NaN (models that handle missing
     * values: XGBoost, LightGBM, a pipeline with an imputer).
     */
    missingValues: z.enum(['fail', 'model']).default('fail'),
    /** sha256 (hex) of model.onnx; verified before a session is created. */
    sha256: z.string().regex(SHA256_HEX),
    algorithm: z.string().default('unknown'),
    createdAt: z.string(),
    source: z.string().default('unknown'),
  })
  .superRefine((m, ctx) => {
    if (m.output.reconstructionError && m.output.column !== 0) {
      const message = 'a reconstruction is scored whole: column must be 0 with reconstructionError';
      ctx.addIssue({ code: 'custom', path: ['output', 'column'], message });
    }
    if (m.output.reduce && m.output.column !== 0) {
      const message = 'a row is reduced across its columns: column must be 0 with reduce';
      ctx.addIssue({ code: 'custom', path: ['output', 'column'], message });
    }
    if (m.output.reduce && m.output.reconstructionError) {
      const message = 'a reconstruction is scored by its error: reduce cannot be given with reconstructionError';
      ctx.addIssue({ code: 'custom', path: ['output', 'reduce'], message });
    }
    if (m.preprocessing.type === 'standardize') {
      for (const field of ['mean', 'scale'] as const) {
        if (m.preprocessing[field].length !== m.features.length) {
          ctx.addIssue({
            code: 'custom',
            path: ['preprocessing', field],
            message: `has ${m.preprocessing[field].length} values for ${m.features.length} features`,
          });
        }
      }
    }
  });

/** A validated model.json. */
export type ModelMeta = z.infer<typeof modelMetaSchema>;

/** One device's entry in `models/index.json`. */
export const indexEntrySchema = z.object({
  version: z.string(),
  pool: z
    .string()
    .refine(isPool, 'must be "cpu" or "gpu"')
    .transform((p) => p),
  sha256: z.string().regex(SHA256_HEX),
});

/** `models/index.json`: the version each device is scored with now. */
export const modelIndexSchema = z.object({
  schema: z.literal('fleetscore.index/v1'),
  devices: z.record(z.string(), indexEntrySchema),
});

/** A validated models/index.json. */
export type ModelIndex = z.infer<typeof modelIndexSchema>;
/** One device's entry in the index. */
export type IndexEntry = z.infer<typeof indexEntrySchema>;
