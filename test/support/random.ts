/** Seeded test data, so a failure reproduces. */

/** A small deterministic generator (mulberry32) of numbers in [0, 1). */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random symmetric positive-definite K×K matrix: AᵀA + I. */
export function spd(k: number, rand: () => number): number[][] {
  const a = Array.from({ length: k }, () => Array.from({ length: k }, () => rand() * 2 - 1));
  return Array.from({ length: k }, (_, i) =>
    Array.from({ length: k }, (_, j) => a.reduce((s, row) => s + row[i]! * row[j]!, 0) + (i === j ? 1 : 0)),
  );
}
