/**
 * The nearest-neighbour distances in WebAssembly SIMD (lib/models/fast-paths/simd-distances.ts) and the scalar loop
 * that runs without SIMD, each bit for bit as the graph computes them: float32 differences, squares summed in
 * double in feature order, the sum rounded to float32 and its float32 square root; and each row's k nearest as
 * TopK keeps them (linear-ops.ts: ties to the lower index), the rows it leaves to the caller being those with NaN.
 */
import { scalarDistances } from '../../lib/models/fast-paths/fused-neighbors';
import { bestOfLine } from '../../lib/models/fast-paths/linear-ops';
import { simdAvailable, simdNearest } from '../../lib/models/fast-paths/simd-distances';
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
      const out = simdNearest(x, rows, f, s, m, 1)!;
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
    const lines = new Float32Array(n * m);
    scalarDistances({ type: 'float', dims: [n, f], data: x }, { type: 'float', dims: [m, f], data: s }, lines);
    const wrong: string[] = [];
    for (let r = 0; r < n; r++) {
      for (let j = 0; j < m; j++) if (!Object.is(lines[r * m + j], reference(x, s, r, j, f))) wrong.push(`[${r},${j}]`);
    }
    expect(wrong).toEqual([]);
  });
});

describe("each row's k nearest in WebAssembly", () => {
  it.each([
    // rows, samples, features, k, grid steps: the bench's shape, k of 1, k of all samples, samples not a multiple of 4.
    [60, 240, 7, 20, 6],
    [9, 50, 3, 1, 6],
    [7, 16, 2, 16, 6],
    [5, 8, 4, 5, 6],
    [6, 301, 5, 40, 30],
  ] as const)('%i rows, %i samples, %i features, k %i: as TopK keeps them, ties included', (n, m, f, k, steps) => {
    // Samples on a grid, the second half a copy of the first: distances tie often, also at the k-th.
    const draw = seeded(n * 1000 + m);
    const grid = (count: number) => Float32Array.from({ length: count }, () => Math.floor(draw() * steps));
    const s = grid(m * f);
    const half = m >> 1;
    s.copyWithin(half * f, 0, half * f);
    const x = grid(n * f);
    x[f] = NaN; // row 1 holds NaN: left to the caller
    const out = simdNearest(x, n, f, s, m, k)!;
    const best = new Float64Array(k);
    const at = new Int32Array(k);
    let ties = 0;
    let kept = 0;
    expect(out.indices[k]).toBe(-1);
    for (let r = 0; r < n; r++) {
      // A row whose bound admits more than 128 distances is left to the caller too.
      if (out.indices[r * k] === -1) continue;
      kept++;
      bestOfLine(out.lines, r * out.stride, 1, m, k, -1, best, at);
      expect(Array.from(out.values.subarray(r * k, (r + 1) * k))).toEqual(Array.from(best, (v) => -v));
      expect(Array.from(out.indices.subarray(r * k, (r + 1) * k))).toEqual(Array.from(at));
      for (let j = 1; j < k; j++) if (out.values[r * k + j] === out.values[r * k + j - 1]) ties++;
    }
    expect(kept).toBeGreaterThanOrEqual(n / 2);
    if (k > 1) expect(ties).toBeGreaterThan(0);
  });

  it('leaves a row to the caller when more than 128 distances tie under its bound', () => {
    // 200 samples all the same: every distance of a row ties, the bound admits all 200.
    const f = 3;
    const s = new Float32Array(200 * f).fill(1);
    const x = Float32Array.from([0, 0, 0, 1, 1, 1]);
    const out = simdNearest(x, 2, f, s, 200, 5)!;
    expect([out.indices[0], out.indices[5]]).toEqual([-1, -1]);
  });
});
