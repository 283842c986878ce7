/** The float64 linear algebra a Mahalanobis model needs: SPD inversion by Cholesky, distances, a chi-square bound. */

/** Squared Mahalanobis distance (x - mean)ᵀ P (x - mean) in float64. */
export function mahalanobis2(
  x: ArrayLike<number>,
  mean: ArrayLike<number>,
  precision: ArrayLike<number>,
  k: number,
): number {
  let d2 = 0;
  for (let i = 0; i < k; i++) {
    const ci = x[i]! - mean[i]!;
    let row = 0;
    for (let j = 0; j < k; j++) row += precision[i * k + j]! * (x[j]! - mean[j]!);
    d2 += ci * row;
  }
  return d2;
}

/** Inverse of a symmetric positive-definite matrix (row-major) through its Cholesky factor, in float64. */
export function invertSpd(a: Float64Array, k: number): Float64Array {
  const l = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * k + j]!;
      for (let p = 0; p < j; p++) s -= l[i * k + p]! * l[j * k + p]!;
      if (i === j) {
        if (!(s > 0)) throw new Error('covariance is not positive definite');
        l[i * k + i] = Math.sqrt(s);
      } else {
        l[i * k + j] = s / l[j * k + j]!;
      }
    }
  }
  // L⁻¹ by forward substitution, then P = L⁻ᵀ L⁻¹.
  const li = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    li[i * k + i] = 1 / l[i * k + i]!;
    for (let j = 0; j < i; j++) {
      let s = 0;
      for (let p = j; p < i; p++) s += l[i * k + p]! * li[p * k + j]!;
      li[i * k + j] = -s / l[i * k + i]!;
    }
  }
  const p = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let q = i; q < k; q++) s += li[q * k + i]! * li[q * k + j]!;
      p[i * k + j] = s;
      p[j * k + i] = s;
    }
  }
  return p;
}

/** Chi-square 0.99 quantile for `k` degrees of freedom (Wilson–Hilferty; within 1% for k >= 1, ample for a bound). */
export function chiSquare99(k: number): number {
  const z99 = 2.3263478740408408;
  const a = 2 / (9 * k);
  return k * (1 - a + z99 * Math.sqrt(a)) ** 3;
}
