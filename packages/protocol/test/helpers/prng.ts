/**
 * A seeded random stream (mulberry32) for the protocol tests: every failure replays from its
 * seed, which each test prints in its assertion names. Never Math.random.
 */
export class Prng {
  #s: number

  constructor (seed: number) {
    this.#s = seed >>> 0
  }

  /** A u32. */
  u32 (): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0
    let z = this.#s
    z = Math.imul(z ^ (z >>> 15), z | 1)
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61)
    return (z ^ (z >>> 14)) >>> 0
  }

  /** An integer in [0, n). */
  below (n: number): number {
    return n <= 0 ? 0 : Math.floor((this.u32() / 2 ** 32) * n)
  }

  /** An integer in [lo, hi]. */
  between (lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1)
  }

  /** True with probability p. */
  chance (p: number): boolean {
    return this.u32() / 2 ** 32 < p
  }

  bytes (length: number): Buffer {
    const out = Buffer.allocUnsafe(length)
    for (let i = 0; i < length; i++) out[i] = this.u32() & 0xff
    return out
  }

  pick<T> (items: readonly T[]): T {
    return items[this.below(items.length)] as T
  }

  /** Cut points splitting `length` bytes into random chunks of 1..maxChunk bytes. */
  chunking (length: number, maxChunk: number): number[] {
    const cuts: number[] = []
    let at = 0
    while (at < length) {
      at = Math.min(length, at + this.between(1, maxChunk))
      cuts.push(at)
    }
    return cuts
  }
}

/** Splits `buf` at the given ascending cut points (the last one is its length). */
export function splitAt (buf: Buffer, cuts: readonly number[]): Buffer[] {
  const out: Buffer[] = []
  let from = 0
  for (const c of cuts) {
    out.push(buf.subarray(from, c))
    from = c
  }
  if (from < buf.length) out.push(buf.subarray(from))
  return out
}
