/**
 * The demo's seeded random generator (sfc32, seeded through a murmur3 mix of its keys): one independent stream per
 * key tuple (seed, device, purpose or window), so a device-hour's rows do not depend on how many devices or hours
 * are seeded.
 */

/** Stream key of a device's true distribution parameters. */
export const STREAM_PARAMS = 0x9e3779b9;
/** Stream key of a device's training sample. */
export const STREAM_TRAIN = 0x7f4a7c15;

/** A seeded stream of uniform and standard normal numbers. */
export class DemoRng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare = NaN;

  constructor(...key: number[]) {
    let h = 0x811c9dc5;
    for (const v of key) {
      h = Math.imul(h ^ (v >>> 0), 0x85ebca6b);
      h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
      h ^= h >>> 16;
    }
    this.a = h ^ 0xdeadbeef;
    this.b = Math.imul(h, 0x9e3779b1) | 0;
    this.c = Math.imul(h ^ 0x5bd1e995, 0x27d4eb2d) | 0;
    this.d = 1;
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Standard normal (Box–Muller, the second value kept for the next call). */
  normal(): number {
    if (this.spare === this.spare) {
      const v = this.spare;
      this.spare = NaN;
      return v;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    const theta = 2 * Math.PI * this.next();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** Fills `z` with standard normals whose squared norm is below `bound` (rejection sampling). */
  normalsInside(z: Float64Array, bound: number): void {
    for (;;) {
      let s = 0;
      for (let j = 0; j < z.length; j++) {
        const v = this.normal();
        z[j] = v;
        s += v * v;
      }
      if (s < bound) return;
    }
  }
}
