/** Reference computations for tests, written independently of the code under test. */

/** (x - mean)ᵀ P (x - mean) in float64, P row-major k x k. */
export function referenceMahalanobis(
  x: ArrayLike<number>,
  mean: ArrayLike<number>,
  precision: ArrayLike<number>,
): number {
  const k = mean.length;
  const d = Array.from({ length: k }, (_, i) => Number(x[i]) - Number(mean[i]));
  let sum = 0;
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) sum += d[i]! * Number(precision[i * k + j]) * d[j]!;
  }
  return sum;
}

/** Whether `actual` is within a relative (and small absolute) tolerance of `expected`. */
export function close(actual: number, expected: number, rel = 1e-4, abs = 1e-3): boolean {
  return Math.abs(actual - expected) <= Math.max(abs, rel * Math.abs(expected));
}
