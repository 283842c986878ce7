/**
 * The nearest-neighbour distances in WebAssembly SIMD (lib/models/fast-paths/simd-distances.ts) and the scalar loop
 * that runs without SIMD, each bit for bit as the graph computes them: float32 differences, squares summed in
 * double in feature order, the sum rounded to float32 and its float32 square root.
 */
import { distancesFloat } from '../../lib/models/fast-paths/fused-neighbors';
import { simdAvailable, simdDistances } from '../../lib/models/fast-paths/simd-distances';
import { random as seeded } from '../support/random';

/** The graph's distance of row r of `x` to sample j of `s`, computed the plain way. */
function reference(x: Float32Array, s: Float32Array, r: number, j: number, f: number): number {
  let sum = 0;
  for (let c = 0; c < f; c++) {
    const d = Math.fround(s[j * f + c]! - x[r * f + c]!);
    sum += d * d;
  }
  return Math.fround(Math.sqrt(Math.fround(sum)));
}

const random = seeded(11);
/** Values spread over magnitudes, with ties (repeated values), and NaN and infinities where `special`. */
function values(n: number, special: boolean): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = random();
    out[i] = u < 0.1 ? Math.floor(random() * 3) : (random() - 0.5) * 10 ** Math.floor(random() * 8 - 3);
    if (special && u > 0.97) out[i] = [NaN, Infinity, -Infinity][Math.floor(random() * 3)]!;
  }
  return out;
}

const SHAPES = [
  // rows, samples, features: samples a multiple of 4 and not, one feature and many, one row.
  [60, 240, 7],
  [5, 13, 1],
  [1, 3, 16],
  [17, 4, 3],
  [3, 301, 40],
] as const;

describe.each([false, true])('nearest-neighbour distances (NaN and infinities: %s)', (special) => {
  it.each(SHAPES)('%i rows to %i samples of %i features, in SIMD, bit for bit as the graph', (n, m, f) => {
    expect(simdAvailable()).toBe(true);
    const x = values(n * f, special);
    const s = values(m * f, special);
    // Twice, the second time with fewer rows: what the first call left in memory must not leak into the second.
    for (const rows of [n, Math.max(1, n - 2)]) {
      const out = simdDistances(x, rows, f, s, m)!;
      expect(out.stride).toBe(Math.ceil(m / 4) * 4);
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < m; j++)
          expect(Object.is(out.lines[r * out.stride + j], reference(x, s, r, j, f))).toBe(true);
      }
    }
  });

  it.each(SHAPES)('%i rows to %i samples of %i features, in the scalar loop, bit for bit as the graph', (n, m, f) => {
    const x = values(n * f, special);
    const s = values(m * f, special);
    const line = new Float32Array(m);
    const wrong: string[] = [];
    for (let r = 0; r < n; r++) {
      distancesFloat(x, s, line, r, m, f);
      for (let j = 0; j < m; j++) if (!Object.is(line[j], reference(x, s, r, j, f))) wrong.push(`[${r},${j}]`);
    }
    expect(wrong).toEqual([]);
  });
});
