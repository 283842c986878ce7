/** Scores rows with a prepared per-device model (a compiled program or its own session), as a shard does. */
import type { PreparedModel } from '../../lib/models/model-sessions';

/** The scores of `rows` rows of `x` by `model`; throws for a stacked model, which scores many devices per call. */
export async function scoreWith(model: PreparedModel, x: Float32Array, rows: number): Promise<Float32Array> {
  if (model.kind !== 'session') throw new Error(`expected a per-device model, got ${model.kind}`);
  return model.model.score(x, rows);
}
