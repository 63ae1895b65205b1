import { WEAK_HASH_MULTIPLIER } from './weak-table.js'

/**
 * The deltifier's hot loops, alone in small functions so that the compiler keeps their state in
 * registers: roll the window one byte at a time until its weak sum passes a filter. Per byte:
 * two loads, a handful of integer operations, one bit test; nothing allocates. Over data the
 * index does not hold this is where the time goes (~250 MB/s for one window), so everything
 * rarer (table probes, strong hashes, emitting ops) is left to the caller.
 *
 * `sums` carries the rolling state in and out: [s1, s2] of the block window
 * `buf[p, p + blockSize)`, then [s1, s2] of the anchor window `buf[p, p + anchorLength)`. Only
 * the low 16 bits of each count; the arithmetic wraps in int32.
 */

/** Rolls from `p` until the block window passes `filter` or `p` reaches `stop`; returns that `p`. */
export function rollToCandidate (
  buf: Uint8Array, p: number, stop: number, blockSize: number, sums: Int32Array,
  filter: Int32Array, filterShift: number,
): number {
  let s1 = sums[0]!
  let s2 = sums[1]!
  for (; p < stop; p++) {
    const h = Math.imul((s1 & 0xffff) | (s2 << 16), WEAK_HASH_MULTIPLIER) >>> filterShift
    if ((filter[h >>> 5]! & (1 << h)) !== 0) break
    const out = buf[p]!
    s1 = (s1 - out + buf[p + blockSize]!) | 0
    s2 = (s2 - Math.imul(blockSize, out) + s1) | 0
  }
  sums[0] = s1
  sums[1] = s2
  return p
}

/** The same with the anchor window rolled alongside: stops when either passes its filter. */
export function rollToCandidateWithAnchors (
  buf: Uint8Array, p: number, stop: number, blockSize: number, anchorLength: number, sums: Int32Array,
  filter: Int32Array, filterShift: number, anchorFilter: Int32Array, anchorFilterShift: number,
): number {
  let s1 = sums[0]!
  let s2 = sums[1]!
  let a1 = sums[2]!
  let a2 = sums[3]!
  for (; p < stop; p++) {
    let h = Math.imul((s1 & 0xffff) | (s2 << 16), WEAK_HASH_MULTIPLIER) >>> filterShift
    if ((filter[h >>> 5]! & (1 << h)) !== 0) break
    h = Math.imul((a1 & 0xffff) | (a2 << 16), WEAK_HASH_MULTIPLIER) >>> anchorFilterShift
    if ((anchorFilter[h >>> 5]! & (1 << h)) !== 0) break
    const out = buf[p]!
    s1 = (s1 - out + buf[p + blockSize]!) | 0
    s2 = (s2 - Math.imul(blockSize, out) + s1) | 0
    a1 = (a1 - out + buf[p + anchorLength]!) | 0
    a2 = (a2 - Math.imul(anchorLength, out) + a1) | 0
  }
  sums[0] = s1
  sums[1] = s2
  sums[2] = a1
  sums[3] = a2
  return p
}

/** Whether weak sum `weak` passes `filter`. */
export function passes (weak: number, filter: Int32Array, filterShift: number): boolean {
  const h = Math.imul(weak, WEAK_HASH_MULTIPLIER) >>> filterShift
  return (filter[h >>> 5]! & (1 << h)) !== 0
}

/** Slides the window(s) in `sums` one byte at `p`. */
export function rollOne (buf: Uint8Array, p: number, blockSize: number, anchorLength: number, sums: Int32Array, anchors: boolean): void {
  const out = buf[p]!
  sums[0] = (sums[0]! - out + buf[p + blockSize]!) | 0
  sums[1] = (sums[1]! - Math.imul(blockSize, out) + sums[0]!) | 0
  if (!anchors) return
  sums[2] = (sums[2]! - out + buf[p + anchorLength]!) | 0
  sums[3] = (sums[3]! - Math.imul(anchorLength, out) + sums[2]!) | 0
}

/** The weak sum in `sums` at `at` (0: block window, 2: anchor window), as the index stores it. */
export function weakOf (sums: Int32Array, at: number): number {
  return (sums[at]! & 0xffff) | (sums[at + 1]! << 16)
}
