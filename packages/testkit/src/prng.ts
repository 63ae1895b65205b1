/**
 * A seeded random stream (mulberry32) for tests and the bench's fuzz: every failure replays from
 * its seed. Never Math.random.
 */
export class Prng {
  #s: number

  constructor (seed: number) {
    this.#s = seed >>> 0
  }

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

  chance (p: number): boolean {
    return this.u32() / 2 ** 32 < p
  }

  bytes (length: number): Buffer {
    const words = new Uint32Array(Math.ceil(length / 4))
    for (let i = 0; i < words.length; i++) words[i] = this.u32()
    return Buffer.from(words.buffer, 0, length)
  }

  pick<T> (items: readonly T[]): T {
    return items[this.below(items.length)] as T
  }

  /** Index drawn with the given weights. */
  weighted (weights: readonly number[]): number {
    let total = 0
    for (const w of weights) total += w
    let x = this.below(total)
    for (let i = 0; i < weights.length; i++) {
      x -= weights[i] as number
      if (x < 0) return i
    }
    return weights.length - 1
  }

  /** Ascending cut points splitting `length` bytes into chunks of 1..maxChunk bytes (the last is `length`). */
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

/** Splits `buf` at ascending cut points. */
export function splitAt (buf: Buffer, cuts: readonly number[]): Buffer[] {
  const out: Buffer[] = []
  let from = 0
  for (const c of cuts) {
    if (c > from) out.push(buf.subarray(from, c))
    from = c
  }
  if (from < buf.length) out.push(buf.subarray(from))
  return out
}
