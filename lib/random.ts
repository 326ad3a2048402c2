/**
 * A small, fast, seeded pseudo-random number generator for reproducible experiments: xoshiro128**
 * (Blackman & Vigna) on four 32-bit words, seeded through splitmix32. Its whole state (including a
 * pending Box–Muller normal) can be saved with {@linkcode Rng.getState} and restored with
 * {@linkcode Rng.fromState}, so a training run resumed from a checkpoint draws exactly the numbers the
 * uninterrupted run would have drawn.
 *
 * Not cryptographically secure.
 *
 * @module
 */

const TWO_POW_32 = 4294967296;

/** One splitmix32 step: returns the advanced state and a well-mixed output word. */
function splitmix32(state: number): [number, number] {
  const next = (state + 0x9e3779b9) >>> 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z = (z ^ (z >>> 16)) >>> 0;
  return [next, z];
}

/** Seeded PRNG (xoshiro128**). Every method advances the generator deterministically. */
export class Rng {
  #s0 = 0;
  #s1 = 0;
  #s2 = 0;
  #s3 = 0;
  /** A second Box–Muller normal waiting to be returned by the next {@linkcode Rng.normal}, or null. */
  #spare: number | null = null;

  /**
   * Creates a generator from a seed. Any finite number is accepted; integers in ±2^53 give distinct
   * streams (the low and high 32 bits are both mixed in), fractional seeds are truncated.
   */
  constructor(seed: number) {
    if (!Number.isFinite(seed)) throw new RangeError(`Rng: seed must be a finite number, got ${seed}`);
    const whole = Math.trunc(seed);
    const lo = whole >>> 0;
    const hi = Math.floor(whole / TWO_POW_32) >>> 0;
    let st = (lo ^ Math.imul(hi, 0x27d4eb2d)) >>> 0;
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      let out: number;
      [st, out] = splitmix32(st);
      words.push(out);
    }
    if ((words[0] | words[1] | words[2] | words[3]) === 0) words[0] = 1; // the all-zero state is a fixed point
    [this.#s0, this.#s1, this.#s2, this.#s3] = words;
  }

  /** The next uniformly distributed unsigned 32-bit integer, in [0, 2^32). */
  nextU32(): number {
    const s1 = this.#s1;
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = (this.#s3 << 11) | (this.#s3 >>> 21);
    return result;
  }

  /** A uniform float in [0, 1) with 32 bits of resolution. */
  uniform(): number {
    return this.nextU32() / TWO_POW_32;
  }

  /** A uniform float in [lo, hi). Throws a RangeError unless both are finite and lo <= hi. */
  uniformRange(lo: number, hi: number): number {
    if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo > hi) {
      throw new RangeError(`Rng.uniformRange: need finite lo <= hi, got [${lo}, ${hi})`);
    }
    const x = lo + (hi - lo) * this.uniform();
    return x < hi ? x : lo; // guard against rounding up to hi
  }

  /**
   * A standard normal sample (mean 0, variance 1) by the Box–Muller transform. Samples come in
   * pairs: every second call returns the cached partner of the previous one (kept in the state).
   */
  normal(): number {
    if (this.#spare !== null) {
      const z = this.#spare;
      this.#spare = null;
      return z;
    }
    const u1 = 1 - this.uniform(); // (0, 1]: log is finite
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    this.#spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** A uniform integer in [0, n), without modulo bias. `n` must be an integer in [1, 2^32]. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) {
      throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    }
    const limit = TWO_POW_32 - (TWO_POW_32 % n); // largest multiple of n not above 2^32
    let x = this.nextU32();
    while (x >= limit) x = this.nextU32();
    return x % n;
  }

  /** Shuffles `array` in place (Fisher–Yates) and returns it. */
  shuffle<T>(array: T[]): T[] {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  /**
   * The full generator state as plain numbers (JSON-safe): the four xoshiro words, then the pending
   * normal if there is one. Pass it to {@linkcode Rng.fromState} to resume exactly.
   */
  getState(): number[] {
    const words = [this.#s0 >>> 0, this.#s1 >>> 0, this.#s2 >>> 0, this.#s3 >>> 0];
    return this.#spare === null ? words : [...words, this.#spare];
  }

  /** Rebuilds a generator from {@linkcode Rng.getState}'s output. Throws a RangeError on a malformed state. */
  static fromState(state: number[]): Rng {
    if (!Array.isArray(state) || (state.length !== 4 && state.length !== 5)) {
      throw new RangeError(`Rng.fromState: expected 4 or 5 numbers, got ${JSON.stringify(state)}`);
    }
    const words = state.slice(0, 4);
    if (words.some((w) => !Number.isInteger(w) || w < 0 || w >= TWO_POW_32)) {
      throw new RangeError(`Rng.fromState: words must be unsigned 32-bit integers, got ${words.join(", ")}`);
    }
    if ((words[0] | words[1] | words[2] | words[3]) === 0) {
      throw new RangeError("Rng.fromState: the all-zero state is invalid");
    }
    if (state.length === 5 && !Number.isFinite(state[4])) {
      throw new RangeError(`Rng.fromState: pending normal must be finite, got ${state[4]}`);
    }
    const rng = new Rng(0);
    [rng.#s0, rng.#s1, rng.#s2, rng.#s3] = words.map((w) => w | 0);
    rng.#spare = state.length === 5 ? state[4] : null;
    return rng;
  }
}
