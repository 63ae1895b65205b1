import { assemble, type Func, type Instr } from './wasm-emitter.js'
import { MAX_FILTER_BYTES, WEAK_HASH_MULTIPLIER, WEAK_HASH_MULTIPLIER_2 } from './weak-table.js'

/**
 * The deltifier's hot loop, in WebAssembly: roll the weak sum of a block-sized window (and of an
 * anchor-sized one beside it, when the index holds files shorter than a block) one byte at a
 * time until either passes its filter; everything rarer (table probes, strong hashes, ops) is
 * the caller's. Over data the index does not hold this is where the time goes.
 *
 * What it computes is exactly the plain loop (`rollOne`, then `passes` on each window):
 *
 *     for (; p < stop; p++) {
 *       if (passes(weak of block window at p, filter) || passes(weak of anchor window at p, anchorFilter)) break
 *       slide both windows one byte: out = buf[p]; s1 += buf[p + n] - out; s2 += s1 - n·out
 *     }
 *
 * Why WebAssembly, and why this shape: the same loop in JavaScript ran at ~25 cycles a byte
 * (bounds checks, two dependent probes a byte); here it runs eight positions at a time in SIMD
 * lanes. Only the low 16 bits of s1 and s2 matter, so a window's eight next states are two
 * prefix sums in i16x8 lanes, with exact wrap-around:
 *
 *     s1 after k+1 slides = s1 + Σ_{j≤k} (in_j − out_j)
 *     s2 after k+1 slides = s2 + Σ_{j≤k} (s1 after j+1 slides − n·out_j)
 *
 * Then eight weak sums `s1 | s2 << 16` (two interleaving shuffles into i32x4), eight hashes, and
 * the eight filter bytes of their first bits (the filter is a two-bit Bloom filter, see
 * `WeakTable.filter`) gathered into lanes (wasm has no gather: one extract and one lane load
 * each), tested with a per-lane bit mask (a swizzle of [1, 2, 4, …]). Lanes whose first bit is
 * set (~2 % of positions) are then tested whole, in order, from their states spilled to memory:
 * the first that passes ends the run; the last few positions before `stop` go one at a time.
 * Measured on one core over new data (16 MiB, index of 64 MiB + 2,000 small files): the loop
 * alone ~330 MB/s with anchors at 4 KiB blocks, ~300 at 1 KiB (~550 and ~490 without; the JS
 * loop, with one filter bit: ~165 and ~135), about half of it the arithmetic, half the probes.
 *
 * State: the module's memory holds copies of the two filters (refreshed from the index's
 * tables when they change: whole, or the few words a small file changed, see
 * `WeakTable.changedSince`) and a mirror of the caller's buffer, bytes [p, end) of the target,
 * kept across calls and extended as the caller's buffer fills, so every target byte is copied
 * about once. The mirror belongs to one window owner (a deltifier) at a time; another owner's
 * call replaces it (deltifiers of one index taking turns each copy their buffer again). Sums go
 * in and out through `sums` ([s1, s2] of the block window, then of the anchor window; only the
 * low 16 bits of each count).
 *
 * Memory layout (fixed, so the kernel's loads take constant offsets; untouched pages cost no
 * memory): [0, 128) sums and a lane spill, then the block filter and the anchor filter (each at
 * most MAX_FILTER_BYTES), then the mirror, which grows.
 *
 * Requires WebAssembly SIMD (Node ≥ 16.4 on x64 with SSE4.1, or arm64); xxh64 already needs
 * WebAssembly. There is no JS fallback: one implementation, tested against a plain reference.
 */

const SUMS_AT = 0
const SPILL_AT = 64
const FILTER_AT = 128
const ANCHOR_FILTER_AT = FILTER_AT + MAX_FILTER_BYTES
const WINDOW_AT = ANCHOR_FILTER_AT + MAX_FILTER_BYTES
const PAGE = 65536
const MIN_MIRROR = 1 << 20

/** A filter as the kernel takes it: `WeakTable` is one. */
export interface FilterSource {
  readonly filter: Int32Array
  readonly filterShift: number
  readonly version: number
  changedSince (since: number, f: (word: number) => void): boolean
}

type KernelFn = (p: number, stop: number, n: number, m: number, s1: number, s2: number, a1: number, a2: number, shift: number, anchorShift: number) => number

let compiled: WebAssembly.Module | undefined
let owners = 0

export class RollKernel {
  readonly blockSize: number
  readonly anchorLength: number
  readonly #memory: WebAssembly.Memory
  readonly #roll: KernelFn
  readonly #rollAnchored: KernelFn
  #bytes: Uint8Array
  #words: Int32Array
  #table: FilterSource | undefined
  #tableVersion = 0
  #anchors: FilterSource | undefined
  #anchorsVersion = 0
  /** The mirror: target bytes [#mirrorFrom, #mirrorTo) of #owner are at WINDOW_AT. */
  #owner = -1
  #mirrorFrom = 0
  #mirrorTo = 0
  #capacity = MIN_MIRROR

  /** A fresh id for a caller whose window is mirrored (one per deltifier). */
  static newOwner (): number {
    return owners++
  }

  constructor (blockSize: number, anchorLength: number) {
    this.blockSize = blockSize
    this.anchorLength = anchorLength
    compiled ??= new WebAssembly.Module(kernelModule())
    const instance = new WebAssembly.Instance(compiled)
    const exports = instance.exports as { memory: WebAssembly.Memory, roll: KernelFn, rollAnchored: KernelFn }
    this.#memory = exports.memory
    this.#roll = exports.roll
    this.#rollAnchored = exports.rollAnchored
    this.#bytes = new Uint8Array(this.#memory.buffer)
    this.#words = new Int32Array(this.#memory.buffer)
  }

  /** Brings the kernel's copies of the two filters up to date. */
  sync (table: FilterSource, anchors: FilterSource): void {
    if (table !== this.#table || table.version !== this.#tableVersion) {
      this.#tableVersion = this.#copyFilter(table, this.#table === table ? this.#tableVersion : -1, FILTER_AT)
      this.#table = table
    }
    if (anchors !== this.#anchors || anchors.version !== this.#anchorsVersion) {
      this.#anchorsVersion = this.#copyFilter(anchors, this.#anchors === anchors ? this.#anchorsVersion : -1, ANCHOR_FILTER_AT)
      this.#anchors = anchors
    }
  }

  /**
   * Rolls from `p` until the block window (or, with `anchors`, the anchor window) passes its
   * filter or `p` reaches `stop`; returns that `p`. The windows are over `buf`, whose valid
   * bytes end at `end` (≥ stop + blockSize) and whose byte 0 is byte `base` of `owner`'s target.
   */
  roll (owner: number, buf: Uint8Array, base: number, end: number, p: number, stop: number, sums: Int32Array, anchors: boolean): number {
    if (p >= stop) return p
    const at = this.#mirror(owner, buf, base, end, p)
    const table = this.#table!
    const fn = anchors ? this.#rollAnchored : this.#roll
    const q = fn(at, at + stop - p, this.blockSize, this.anchorLength, sums[0]!, sums[1]!, sums[2]!, sums[3]!,
      table.filterShift, this.#anchors!.filterShift)
    const words = this.#words
    sums[0] = words[SUMS_AT >> 2]!
    sums[1] = words[(SUMS_AT >> 2) + 1]!
    if (anchors) {
      sums[2] = words[(SUMS_AT >> 2) + 2]!
      sums[3] = words[(SUMS_AT >> 2) + 3]!
    }
    return p + q - at
  }

  /** Copies a filter, or the words changed since `since` (-1: all); returns the version copied. */
  #copyFilter (source: FilterSource, since: number, at: number): number {
    const filter = source.filter
    const words = this.#words
    const first = at >> 2
    if (since < 0 || !source.changedSince(since, (w) => { words[first + w] = filter[w]! })) {
      words.set(filter, first)
    }
    return source.version
  }

  /** Makes target bytes [base + p, base + end) available at WINDOW_AT + the returned offset. */
  #mirror (owner: number, buf: Uint8Array, base: number, end: number, p: number): number {
    const from = base + p
    const to = base + end
    if (owner === this.#owner && from >= this.#mirrorFrom && from <= this.#mirrorTo) {
      if (to <= this.#mirrorTo) return from - this.#mirrorFrom
      if (to - this.#mirrorFrom <= this.#capacity) { // append what the caller got since
        this.#bytes.set(buf.subarray(this.#mirrorTo - base, end), WINDOW_AT + this.#mirrorTo - this.#mirrorFrom)
        this.#mirrorTo = to
        return from - this.#mirrorFrom
      }
    }
    // Start over at p, with room for twice as much, so that appending copies each byte about once.
    if (2 * (end - p) > this.#capacity) this.#grow(2 * (end - p))
    this.#bytes.set(buf.subarray(p, end), WINDOW_AT)
    this.#owner = owner
    this.#mirrorFrom = from
    this.#mirrorTo = to
    return 0
  }

  #grow (capacity: number): void {
    const pages = Math.ceil((WINDOW_AT + capacity) / PAGE) - this.#memory.buffer.byteLength / PAGE
    if (pages > 0) this.#memory.grow(pages) // detaches the old views
    this.#capacity = this.#memory.buffer.byteLength - WINDOW_AT
    this.#bytes = new Uint8Array(this.#memory.buffer)
    this.#words = new Int32Array(this.#memory.buffer)
  }
}

/** Whether weak sum `weak` passes `filter`: both its bits are set (see `WeakTable.filter`). */
export function passes (weak: number, filter: Int32Array, filterShift: number): boolean {
  const h = Math.imul(weak, WEAK_HASH_MULTIPLIER) >>> filterShift
  const h2 = (Math.imul(weak, WEAK_HASH_MULTIPLIER_2) >>> filterShift) + (filter.length >>> 1) * 32
  return (filter[h >>> 5]! & (1 << h)) !== 0 && (filter[h2 >>> 5]! & (1 << h2)) !== 0
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

// ---------------------------------------------------------------------------------------------
// The module. Both functions take (p, stop, n, m, s1, s2, a1, a2, shift, anchorShift), p and stop
// relative to WINDOW_AT, n the block size, m the anchor length; they return the final p and
// leave the final sums (low 16 bits) at SUMS_AT. `roll` ignores the anchor window.

/** One rolled window: its length and the names of its locals. */
interface Window {
  /** The window length (a parameter). */
  n: string
  s1: string
  s2: string
  shift: string
  filterAt: number
  /** Locals of the SIMD loop: n in every lane, the state at p in every lane, the eight next states, the eight tests. */
  nv: string
  c1: string
  c2: string
  l1: string
  l2: string
  lo: string
  hi: string
}

const BLOCK: Window = { n: '$n', s1: '$s1', s2: '$s2', shift: '$shift', filterAt: FILTER_AT, nv: '$nv', c1: '$c1', c2: '$c2', l1: '$l1', l2: '$l2', lo: '$lo', hi: '$hi' }
const ANCHOR: Window = { n: '$m', s1: '$a1', s2: '$a2', shift: '$anchorShift', filterAt: ANCHOR_FILTER_AT, nv: '$mv', c1: '$ac1', c2: '$ac2', l1: '$al1', l2: '$al2', lo: '$alo', hi: '$ahi' }

const i32x4 = (x: number): number[] => Array.from({ length: 4 }, () => [x & 0xff, (x >>> 8) & 0xff, (x >>> 16) & 0xff, x >>> 24]).flat()
const range = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i))
/** Shuffle (zero, x) → x moved up `k` 16-bit lanes, zeros shifted in (consecutive bytes: one palignr). */
const shiftUp = (k: number): number[] => range(16, (i) => 16 - 2 * k + i)
/** Shuffle (x, x) → lane 7 of x in all eight lanes. */
const LANE7 = range(16, (i) => 14 + (i & 1))
/** Shuffle (s1 lanes, s2 lanes) → i32 lanes s1 | s2 << 16 of lanes 0–3, and of lanes 4–7. */
const WEAK_LO = range(16, (i) => (i & 2 ? 16 : 0) + 2 * (i >> 2) + (i & 1))
const WEAK_HI = WEAK_LO.map((b) => b + 8)

function kernelModule (): Uint8Array<ArrayBuffer> {
  return assemble([kernelFunc('roll', [BLOCK]), kernelFunc('rollAnchored', [BLOCK, ANCHOR])], Math.ceil((WINDOW_AT + MIN_MIRROR) / PAGE))
}

function kernelFunc (name: string, windows: Window[]): Func {
  const each = (f: (w: Window) => Instr[]): Instr[] => windows.flatMap(f)
  const v128 = (...names: string[]): Array<[string, 'v128']> => names.map((n) => [n, 'v128'])
  return {
    name,
    params: ['$p', '$stop', '$n', '$m', '$s1', '$s2', '$a1', '$a2', '$shift', '$anchorShift'].map((n) => [n, 'i32']),
    result: 'i32',
    locals: [
      ['$weak', 'i32'], ['$h', 'i32'], ['$out', 'i32'], ['$lanes', 'i32'], ['$laneByte', 'i32'],
      ...v128('$zero', '$k', '$seven', '$bits', '$x', '$t', '$hash', '$addr', '$got', '$anyLo', '$anyHi'),
      ...windows.flatMap((w) => v128(w.nv, w.c1, w.c2, w.l1, w.l2, w.lo, w.hi)),
    ],
    body: [
      ['v128.const', range(16, () => 0)], ['local.set', '$zero'],
      ['v128.const', i32x4(WEAK_HASH_MULTIPLIER)], ['local.set', '$k'],
      ['v128.const', i32x4(7)], ['local.set', '$seven'],
      ['v128.const', range(16, (i) => (i < 8 ? 1 << i : 0))], ['local.set', '$bits'],
      ...each((w) => [['local.get', w.n], ['i16x8.splat'], ['local.set', w.nv]]),
      ['block', '$done'],
      // Nothing to look at when p ≥ stop; then the window at p itself.
      ['local.get', '$p'], ['local.get', '$stop'], ['i32.ge_u'], ['br_if', '$done'],
      ...each((w) => [...test(w), ['br_if', '$done']]),
      ...each((w) => [['local.get', w.s1], ['i16x8.splat'], ['local.set', w.c1], ['local.get', w.s2], ['i16x8.splat'], ['local.set', w.c2]]),
      // Eight positions a step, p + 1 … p + 8, while all of them are before stop.
      ['block', '$tail'],
      ['loop', '$eights'],
      ['local.get', '$stop'], ['local.get', '$p'], ['i32.sub'], ['i32.const', 8], ['i32.gt_u'], ['i32.eqz'], ['br_if', '$tail'],
      ['local.get', '$p'], ['v128.load8x8_u', WINDOW_AT], ['local.set', '$x'], // the bytes leaving, as i16 lanes
      ...each(eight),
      ...anyLanes(windows),
      ['local.get', '$anyLo'], ['local.get', '$anyHi'], ['v128.or'], ['v128.any_true'],
      ['if', '$found'],
      // Some lane has its first filter bit set: in lane order, the first whose windows pass
      // the whole test ends the run (its states become the scalars, p moves to it).
      ...windows.flatMap((w, i): Instr[] => [
        ['i32.const', 0], ['local.get', w.l1], ['v128.store', SPILL_AT + 32 * i],
        ['i32.const', 0], ['local.get', w.l2], ['v128.store', SPILL_AT + 32 * i + 16],
      ]),
      ['local.get', '$anyLo'], ['i32x4.bitmask'], ['local.get', '$anyHi'], ['i32x4.bitmask'], ['i32.const', 4], ['i32.shl'], ['i32.or'],
      ['local.set', '$lanes'],
      ['loop', '$candidates'],
      ['block', '$fails'],
      ['block', '$passes'],
      ['local.get', '$lanes'], ['i32.ctz'], ['i32.const', 1], ['i32.shl'], ['local.set', '$laneByte'], // its byte offset
      ...windows.flatMap((w, i): Instr[] => [
        ['local.get', '$laneByte'], ['i32.load16_u', SPILL_AT + 32 * i], ['local.set', w.s1],
        ['local.get', '$laneByte'], ['i32.load16_u', SPILL_AT + 32 * i + 16], ['local.set', w.s2],
      ]),
      ...each((w) => [...test(w), ['br_if', '$passes']]),
      ['br', '$fails'],
      ['end'],
      ['local.get', '$p'], ['local.get', '$lanes'], ['i32.ctz'], ['i32.add'], ['i32.const', 1], ['i32.add'], ['local.set', '$p'],
      ['br', '$done'],
      ['end'],
      ['local.get', '$lanes'], ['local.get', '$lanes'], ['i32.const', 1], ['i32.sub'], ['i32.and'], ['local.tee', '$lanes'],
      ['br_if', '$candidates'],
      ['end'],
      ['end'],
      ...each((w) => [
        ['local.get', w.l1], ['local.get', w.l1], ['i8x16.shuffle', LANE7], ['local.set', w.c1],
        ['local.get', w.l2], ['local.get', w.l2], ['i8x16.shuffle', LANE7], ['local.set', w.c2],
      ]),
      ['local.get', '$p'], ['i32.const', 8], ['i32.add'], ['local.set', '$p'],
      ['br', '$eights'],
      ['end'],
      ['end'],
      // The last positions one at a time, from the state at p (already tested).
      ...each((w) => [['local.get', w.c1], ['i16x8.extract_lane_u', 0], ['local.set', w.s1], ['local.get', w.c2], ['i16x8.extract_lane_u', 0], ['local.set', w.s2]]),
      ['loop', '$ones'],
      ['local.get', '$p'], ['i32.load8_u', WINDOW_AT], ['local.set', '$out'],
      ...each(slide),
      ['local.get', '$p'], ['i32.const', 1], ['i32.add'], ['local.tee', '$p'],
      ['local.get', '$stop'], ['i32.ge_u'], ['br_if', '$done'],
      ...each((w) => [...test(w), ['br_if', '$done']]),
      ['br', '$ones'],
      ['end'],
      ['end'],
      ...[0, 1, 2, 3].flatMap((i): Instr[] => [
        ['i32.const', 0], ['local.get', ['$s1', '$s2', '$a1', '$a2'][i]!], ['i32.const', 0xffff], ['i32.and'], ['i32.store', SUMS_AT + 4 * i],
      ]),
      ['local.get', '$p'],
    ],
  }
}

/** Pushes whether window `w`'s weak sum passes its filter (0 or 1): `passes` in wasm. */
function test (w: Window): Instr[] {
  const bit = (multiplier: number, half: Instr[]): Instr[] => [
    ['local.get', '$weak'], ['i32.const', multiplier], ['i32.mul'], ['local.get', w.shift], ['i32.shr_u'], ['local.tee', '$h'],
    ['i32.const', 3], ['i32.shr_u'], ...half, ['i32.load8_u', w.filterAt], // the byte h >> 3 of its half …
    ['local.get', '$h'], ['i32.const', 7], ['i32.and'], ['i32.shr_u'], ['i32.const', 1], ['i32.and'], // … its bit h & 7
  ]
  const secondHalf: Instr[] = [['i32.const', 1], ['i32.const', 29], ['local.get', w.shift], ['i32.sub'], ['i32.shl'], ['i32.add']]
  return [
    ['local.get', w.s1], ['i32.const', 0xffff], ['i32.and'], ['local.get', w.s2], ['i32.const', 16], ['i32.shl'], ['i32.or'],
    ['local.set', '$weak'],
    ...bit(WEAK_HASH_MULTIPLIER, []), ...bit(WEAK_HASH_MULTIPLIER_2, secondHalf), ['i32.and'],
  ]
}

/** Slides window `w` one byte: $out leaves, the byte at p + n enters. */
function slide (w: Window): Instr[] {
  return [
    ['local.get', w.s1], ['local.get', '$out'], ['i32.sub'], ['local.get', '$p'], ['local.get', w.n], ['i32.add'], ['i32.load8_u', WINDOW_AT], ['i32.add'], ['local.set', w.s1],
    ['local.get', w.s2], ['local.get', w.n], ['local.get', '$out'], ['i32.mul'], ['i32.sub'], ['local.get', w.s1], ['i32.add'], ['local.set', w.s2],
  ]
}

/** The states of window `w` after 1 … 8 slides from p (l1, l2) and whether each passes (lo: lanes 0–3, hi: 4–7). */
function eight (w: Window): Instr[] {
  return [
    ['local.get', '$p'], ['local.get', w.n], ['i32.add'], ['v128.load8x8_u', WINDOW_AT], ['local.get', '$x'], ['i16x8.sub'],
    ...prefixSum,
    ['local.get', w.c1], ['i16x8.add'], ['local.tee', w.l1],
    ['local.get', '$x'], ['local.get', w.nv], ['i16x8.mul'], ['i16x8.sub'],
    ...prefixSum,
    ['local.get', w.c2], ['i16x8.add'], ['local.set', w.l2],
    ['local.get', w.l1], ['local.get', w.l2], ['i8x16.shuffle', WEAK_LO], ...probe(w), ['local.set', w.lo],
    ['local.get', w.l1], ['local.get', w.l2], ['i8x16.shuffle', WEAK_HI], ...probe(w), ['local.set', w.hi],
  ]
}

/** i16x8 on the stack → its inclusive prefix sums (lane i: lanes 0 … i added). */
const prefixSum: Instr[] = [
  ['local.set', '$t'],
  ...[1, 2, 4].flatMap((k): Instr[] => [['local.get', '$zero'], ['local.get', '$t'], ['i8x16.shuffle', shiftUp(k)], ['local.get', '$t'], ['i16x8.add'], ['local.set', '$t']]),
  ['local.get', '$t'],
]

/** Four weak sums (i32x4) on the stack → four lanes, all ones where the weak sum passes w's filter. */
function probe (w: Window): Instr[] {
  return [
    ['local.get', '$k'], ['i32x4.mul'], ['local.get', w.shift], ['i32x4.shr_u'], ['local.tee', '$hash'],
    ['i32.const', 3], ['i32x4.shr_u'], ['local.set', '$addr'],
    ['local.get', '$zero'], ['local.set', '$got'],
    ...[0, 1, 2, 3].flatMap((lane): Instr[] => [ // the filter's byte h >> 3 into byte 0 of each lane
      ['local.get', '$addr'], ['i32x4.extract_lane', lane], ['local.get', '$got'], ['v128.load8_lane', w.filterAt, 4 * lane], ['local.set', '$got'],
    ]),
    ['local.get', '$bits'], ['local.get', '$hash'], ['local.get', '$seven'], ['v128.and'], ['i8x16.swizzle'], // 1 << (h & 7)
    ['local.get', '$got'], ['v128.and'], ['local.get', '$zero'], ['i32x4.ne'],
  ]
}

/** $anyLo, $anyHi: the lanes where some window passes. */
function anyLanes (windows: Window[]): Instr[] {
  const or = (half: 'lo' | 'hi'): Instr[] => [
    ...windows.map((w): Instr => ['local.get', w[half]]),
    ...windows.slice(1).map((): Instr => ['v128.or']),
  ]
  return [...or('lo'), ['local.set', '$anyLo'], ...or('hi'), ['local.set', '$anyHi']]
}
