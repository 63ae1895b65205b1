/** A seeded random stream (xorshift32) for tests: every failure replays from its seed. */
export class Prng {
  #x: number

  constructor (seed: number) {
    this.#x = (seed >>> 0) || 0x9e3779b9
  }

  /** A u32. */
  next (): number {
    let x = this.#x
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.#x = x >>> 0
    return this.#x
  }

  /** An integer in [0, n). */
  below (n: number): number {
    return n <= 0 ? 0 : Math.floor((this.next() / 2 ** 32) * n)
  }

  /** An integer in [lo, hi]. */
  between (lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1)
  }

  bytes (length: number): Uint8Array {
    const out = new Uint8Array(length)
    for (let i = 0; i < length; i++) out[i] = this.next() & 0xff
    return out
  }

  pick<T> (items: readonly T[]): T {
    return items[this.below(items.length)]!
  }
}
