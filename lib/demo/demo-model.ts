/**
 * One demo device's true sensor distribution and the Mahalanobis model fitted to a seeded sample of it, exactly as
 * the ONNX graph registered for the device holds it (float32 parameters).
 */
import { DemoRng, STREAM_PARAMS, STREAM_TRAIN } from './demo-rng';
import { chiSquare99, invertSpd, mahalanobis2 } from './spd-math';

/** threshold = THRESHOLD_MARGIN x the largest squared distance seen in the model's training sample. */
export const THRESHOLD_MARGIN = 1.5;

/** One device's generator (true distribution) and model (estimated from its training sample). */
export interface DemoModel {
  /** True mean and lower Cholesky factor (row-major K x K) of the device's sensor distribution. */
  mean: Float64Array;
  chol: Float64Array;
  /** True standard deviation of each sensor. */
  sigma: Float64Array;
  /** Bound on the true squared distance of a normal row: the chi-square 0.99 quantile for K. */
  bound: number;
  /** The model's parameters exactly as the ONNX graph stores them (float32 values), row-major precision. */
  mean32: Float64Array;
  precision32: Float64Array;
  /** Training-sample statistics and the decision threshold. */
  trainingRows: number;
  maxTrainingScore: number;
  threshold: number;
}

/**
 * Draws device `index`'s true distribution (from `seed`) and fits its model on a separate seeded sample of
 * normal rows (at least 500): sample mean, unbiased covariance, precision by Cholesky inversion in float64,
 * threshold = THRESHOLD_MARGIN x the largest training score. Deterministic; exported so tests and tools can
 * recompute what `seedDemoFleet` registered.
 */
export function trainDemoModel(seed: number, index: number, k: number): DemoModel {
  const { mean, sigma, chol } = trueDistribution(new DemoRng(seed, index, STREAM_PARAMS), k);
  const bound = chiSquare99(k);

  const n = Math.max(500, 20 * k);
  const rng = new DemoRng(seed, index, STREAM_TRAIN);
  const sample = new Float64Array(n * k);
  const z = new Float64Array(k);
  for (let r = 0; r < n; r++) {
    rng.normalsInside(z, bound);
    for (let i = 0; i < k; i++) {
      let v = mean[i]!;
      for (let j = 0; j <= i; j++) v += chol[i * k + j]! * z[j]!;
      sample[r * k + i] = v;
    }
  }
  const { mu, cov } = sampleMoments(sample, n, k);
  const precision = invertSpd(cov, k);
  const mean32 = mean.map((_, i) => Math.fround(mu[i]!));
  const precision32 = precision.map(Math.fround);
  let maxTrainingScore = 0;
  for (let r = 0; r < n; r++) {
    const score = mahalanobis2(sample.subarray(r * k, r * k + k), mean32, precision32, k);
    if (score > maxTrainingScore) maxTrainingScore = score;
  }
  return {
    mean,
    chol,
    sigma,
    bound,
    mean32,
    precision32,
    trainingRows: n,
    maxTrainingScore,
    threshold: THRESHOLD_MARGIN * maxTrainingScore,
  };
}

/**
 * A device's true mean, sensor sigmas and covariance factor: correlation R = B Bᵀ with B unit lower-triangular,
 * rows normalised so diag(R) = 1; chol(Σ) = diag(σ) · B̃.
 */
function trueDistribution(params: DemoRng, k: number): { mean: Float64Array; sigma: Float64Array; chol: Float64Array } {
  const mean = new Float64Array(k);
  const sigma = new Float64Array(k);
  for (let j = 0; j < k; j++) {
    mean[j] = Math.round((20 + 60 * params.next()) * 100) / 100;
    sigma[j] = 0.5 + 4.5 * params.next();
  }
  const chol = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    let norm = 1;
    const row = new Float64Array(i + 1);
    row[i] = 1;
    for (let j = 0; j < i; j++) {
      row[j] = 0.3 * params.normal();
      norm += row[j]! * row[j]!;
    }
    const s = sigma[i]! / Math.sqrt(norm);
    for (let j = 0; j <= i; j++) chol[i * k + j] = row[j]! * s;
  }
  return { mean, sigma, chol };
}

/** Sample mean and unbiased covariance (row-major, symmetric) of `n` rows of `k` values. */
function sampleMoments(sample: Float64Array, n: number, k: number): { mu: Float64Array; cov: Float64Array } {
  const mu = new Float64Array(k);
  for (let r = 0; r < n; r++) for (let i = 0; i < k; i++) mu[i] = mu[i]! + sample[r * k + i]!;
  for (let i = 0; i < k; i++) mu[i] = mu[i]! / n;
  const cov = new Float64Array(k * k);
  const c = new Float64Array(k);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < k; i++) c[i] = sample[r * k + i]! - mu[i]!;
    for (let i = 0; i < k; i++) for (let j = 0; j <= i; j++) cov[i * k + j] = cov[i * k + j]! + c[i]! * c[j]!;
  }
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      const v = cov[i * k + j]! / (n - 1);
      cov[i * k + j] = v;
      cov[j * k + i] = v;
    }
  }
  return { mu, cov };
}
