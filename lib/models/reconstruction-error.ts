/**
 * The score of a reconstruction model (an autoencoder, PCA projected back): each row's mean squared or mean
 * absolute error between the model's output and the (preprocessed) input it was given, so models exported as
 * they are need no hand-written error head in their graph.
 */

/** How a reconstruction is turned into a score. */
export type ReconstructionError = 'mse' | 'mae';

/** Per-row error of `output` [rows, k] against `input` [rows, k], accumulated in double. */
export function reconstructionError(
  kind: ReconstructionError,
  input: Float32Array,
  output: Float32Array | Float64Array,
  rows: number,
  k: number,
): Float32Array {
  const scores = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let j = r * k; j < (r + 1) * k; j++) {
      const d = (input[j] as number) - (output[j] as number);
      sum += kind === 'mse' ? d * d : Math.abs(d);
    }
    scores[r] = sum / k;
  }
  return scores;
}
