/**
 * rsync's weak checksum, the one that can be rolled: for a window x[0..n),
 * `s1 = Σ x[i]` and `s2 = Σ (n − i)·x[i]` (the sum of the prefix sums), each mod 2¹⁶,
 * digest `s1 | s2 << 16` as an unsigned 32-bit number.
 *
 * Sliding the window one byte costs two additions and a multiply, whatever the window length;
 * that is what lets the deltifier look for every indexed block at every byte offset.
 * Arithmetic is done in wrapping int32 (`| 0`): 2¹⁶ divides 2³², so the low 16 bits of each
 * sum are exact however large the window.
 */
export function weakSum (data: Uint8Array, start: number, end: number): number {
  let s1 = 0
  let s2 = 0
  let i = start
  // Eight bytes a step (the prefix sums of a group folded into one update): 2× the speed of
  // the byte loop, and this sum is half the cost of indexing a block. The intermediate values stay
  // far below 2⁵³, so `| 0` wraps them exactly.
  for (; i + 8 <= end; i += 8) {
    const a = data[i]!
    const b = data[i + 1]!
    const c = data[i + 2]!
    const d = data[i + 3]!
    const e = data[i + 4]!
    const f = data[i + 5]!
    const g = data[i + 6]!
    const h = data[i + 7]!
    s2 = (s2 + 8 * s1 + 8 * a + 7 * b + 6 * c + 5 * d + 4 * e + 3 * f + 2 * g + h) | 0
    s1 = (s1 + a + b + c + d + e + f + g + h) | 0
  }
  for (; i < end; i++) {
    s1 = (s1 + data[i]!) | 0
    s2 = (s2 + s1) | 0
  }
  return ((s1 & 0xffff) | (s2 << 16)) >>> 0
}

/**
 * The weak checksum of a sliding window of fixed length. The deltifier inlines the same
 * arithmetic in its scan loop (a method call per byte costs a third of the speed); this class is
 * the reference the tests hold that loop to, and a convenience for other callers.
 */
export class RollingSum {
  #s1 = 0
  #s2 = 0
  #length = 0

  /** Starts over with the window `data[start, end)`. */
  init (data: Uint8Array, start: number, end: number): void {
    // Only the low 16 bits of each half ever matter, so the digest is a full state.
    const digest = weakSum(data, start, end)
    this.#s1 = digest & 0xffff
    this.#s2 = digest >>> 16
    this.#length = end - start
  }

  /** Slides the window one byte: `outByte` leaves at the front, `inByte` enters at the back. */
  roll (outByte: number, inByte: number): void {
    this.#s1 = (this.#s1 - outByte + inByte) | 0
    this.#s2 = (this.#s2 - Math.imul(this.#length, outByte) + this.#s1) | 0
  }

  /** The window's length in bytes. */
  get length (): number {
    return this.#length
  }

  /** Equal to `weakSum` over the current window. */
  digest (): number {
    return ((this.#s1 & 0xffff) | (this.#s2 << 16)) >>> 0
  }
}
