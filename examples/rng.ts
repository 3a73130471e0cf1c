// Seeded random numbers for the example: every run is reproducible from its seeds, and the
// sigmoid and softmax runs of one configuration see exactly the same data and corruptions.

/** A small, fast, seedable generator (mulberry32) with Gaussian and integer draws. */
export class Rng {
  private state: number;
  private spare: number | null = null;

  /** `seed` and any number of extra integers (stream ids) are hashed into the 32-bit state. */
  constructor(seed: number, ...stream: number[]) {
    let h = 0x9e3779b9 ^ seed;
    for (const s of stream) h = Math.imul(h ^ (s + 0x7f4a7c15), 0x85ebca6b) ^ (h >>> 13);
    this.state = h >>> 0;
    for (let i = 0; i < 4; i++) this.uniform(); // decorrelate nearby seeds
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Standard normal (Box–Muller, both values used). */
  gaussian(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const u = 1 - this.uniform(); // (0, 1]
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** A Float32Array of `length` draws from N(0, std²). */
  gaussians(length: number, std = 1): Float32Array {
    const out = new Float32Array(length);
    for (let i = 0; i < length; i++) out[i] = std * this.gaussian();
    return out;
  }

  /** Shuffles `a` in place (Fisher–Yates) and returns it. */
  shuffle<T extends { length: number; [i: number]: number }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    return a;
  }
}
