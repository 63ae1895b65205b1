import t from 'tap'
import { anchorLengthFor } from '../src/anchor.js'
import { passes, RollKernel, rollOne } from '../src/roll-kernel.js'
import { weakSum } from '../src/weak-sum.js'
import { WEAK_HASH_MULTIPLIER, WeakTable } from '../src/weak-table.js'
import { Prng } from './helpers/prng.js'

/**
 * The WebAssembly roll kernel against a straightforward reference: at each position, the weak
 * sums computed from scratch (`weakSum`) and tested with `passes`, the filter test the
 * deltifier uses. Seeded: a failure names its round.
 */

const CAP = 64

/** A weak table holding `weaks` (as int32), with its entry array. */
function tableOf (weaks: number[]): WeakTable {
  const table = new WeakTable(weaks.length)
  const array = Int32Array.from(weaks)
  weaks.forEach((w, id) => table.insert(w, id, array, CAP))
  return table
}

/** Sets only the first of `weak`'s two filter bits: the kernel's vector loop sees a candidate, the whole test fails. */
function setFirstBit (table: WeakTable, weak: number): void {
  const h = Math.imul(weak, WEAK_HASH_MULTIPLIER) >>> table.filterShift
  table.filter[h >>> 5]! |= 1 << h
}

/** The reference: the first q in [p, stop) whose window(s) pass, else stop. */
function reference (buf: Uint8Array, p: number, stop: number, B: number, A: number, block: WeakTable, anchor: WeakTable, anchors: boolean): number {
  for (let q = p; q < stop; q++) {
    if (passes(weakSum(buf, q, q + B) | 0, block.filter, block.filterShift)) return q
    if (anchors && passes(weakSum(buf, q, q + A) | 0, anchor.filter, anchor.filterShift)) return q
  }
  return stop
}

function sumsAt (buf: Uint8Array, p: number, B: number, A: number): Int32Array {
  const b = weakSum(buf, p, p + B)
  const a = weakSum(buf, p, p + A)
  return Int32Array.of(b & 0xffff, b >>> 16, a & 0xffff, a >>> 16)
}

/** Whether `sums` (any high bits) is the state of the windows at p. */
function sumsMatch (sums: Int32Array, buf: Uint8Array, p: number, B: number, A: number, anchors: boolean): boolean {
  const want = sumsAt(buf, p, B, A)
  for (let i = 0; i < (anchors ? 4 : 2); i++) if ((sums[i]! & 0xffff) !== want[i]) return false
  return true
}

/** Random bytes, or runs of few values (many equal sums), or zeros with noise. */
function content (r: Prng, length: number): Uint8Array {
  switch (r.below(3)) {
    case 0: return r.bytes(length)
    case 1: {
      const out = new Uint8Array(length)
      for (let i = 0; i < length;) {
        const run = r.between(1, 40)
        out.fill(r.below(4) * 85, i, i + run)
        i += run
      }
      return out
    }
    default: {
      const out = new Uint8Array(length)
      for (let i = 0; i < length; i++) if (r.below(50) === 0) out[i] = r.below(256)
      return out
    }
  }
}

interface Case {
  B: number
  A: number
  buf: Uint8Array
  block: WeakTable
  anchor: WeakTable
}

/** A buffer and filters with planted hits: weak sums of some of its windows, whole or first bit only. */
function makeCase (r: Prng): Case {
  const B = r.pick([8, 16, 64, 256, 1024])
  const A = anchorLengthFor(B)
  const buf = content(r, B + r.below(6 * B + 200))
  const positions = buf.length - B + 1
  const pick = (n: number, length: number): number[] => Array.from({ length: n }, () => {
    const q = r.below(positions)
    return weakSum(buf, q, q + length) | 0
  })
  const density = r.pick([0, 0.002, 0.02, 0.1])
  const block = tableOf([...pick(Math.ceil(positions * density), B), ...Array.from({ length: r.below(50) }, () => r.next() | 0)])
  const anchor = tableOf(pick(Math.ceil(positions * density), A))
  for (const w of pick(Math.ceil(positions * density * 2), B)) setFirstBit(block, w)
  for (const w of pick(Math.ceil(positions * density * 2), A)) setFirstBit(anchor, w)
  return { B, A, buf, block, anchor }
}

t.test('the kernel stops where the reference does, with the same sums, over random buffers and filters', async (t) => {
  let checked = 0
  let stops = 0
  for (let round = 0; round < 600; round++) {
    const r = new Prng(round + 1)
    const { B, A, buf, block, anchor } = makeCase(r)
    const kernel = new RollKernel(B, A)
    kernel.sync(block, anchor)
    const owner = RollKernel.newOwner()
    const anchors = r.below(3) !== 0
    const last = buf.length - B
    // Roll as the deltifier does: from p to a stop, step over it, go on, until stop.
    let p = r.below(last + 1)
    const stop = p + r.below(last - p + 1)
    const sums = sumsAt(buf, p, B, A)
    const where = `round ${round} (B=${B}, ${buf.length} B, p=${p}, stop=${stop}, anchors ${String(anchors)})`
    for (;;) {
      const want = reference(buf, p, stop, B, A, block, anchor, anchors)
      const got = kernel.roll(owner, buf, 0, buf.length, p, stop, sums, anchors)
      if (got !== want) return t.fail(`${where}: from ${p} stopped at ${got}, reference ${want}`)
      if (!sumsMatch(sums, buf, got, B, A, anchors)) return t.fail(`${where}: wrong sums at ${got}`)
      if (got >= stop) break
      stops++
      rollOne(buf, got, B, A, sums, anchors)
      p = got + 1
    }
    checked++
  }
  t.equal(checked, 600)
  t.ok(stops > 1000, `${stops} stops checked`)
})

t.test('edges: p = stop, stop at the last window, a candidate at p, at stop, in every lane', async (t) => {
  const r = new Prng(77)
  const B = 64
  const A = anchorLengthFor(B)
  const buf = r.bytes(40 * B)
  const last = buf.length - B
  const only = (q: number): WeakTable => tableOf([weakSum(buf, q, q + B) | 0])
  const none = tableOf([])
  const run = (block: WeakTable, p: number, stop: number, anchor = none, anchors = false): number => {
    const kernel = new RollKernel(B, A)
    kernel.sync(block, anchor)
    const sums = sumsAt(buf, p, B, A)
    const got = kernel.roll(RollKernel.newOwner(), buf, 0, buf.length, p, stop, sums, anchors)
    t.ok(sumsMatch(sums, buf, got, B, A, anchors), `sums at ${got}`)
    return got
  }
  t.equal(run(only(10), 10, 10), 10, 'p = stop: nothing rolled')
  t.equal(run(none, 0, last), last, 'no candidate: the window at the buffer end')
  t.equal(run(only(last - 1), 0, last), last - 1, 'a candidate just before the end')
  t.equal(run(only(last), 0, last), last, 'a candidate at stop is not tested')
  t.equal(run(only(100), 100, 500), 100, 'a candidate at p')
  for (let lane = 0; lane < 8; lane++) {
    t.equal(run(only(200 + 1 + lane), 200, 1000), 201 + lane, `a candidate in lane ${lane} of the first eight`)
    t.equal(run(only(200 + 9 + lane), 200, 1000), 209 + lane, `a candidate in lane ${lane} of the second eight`)
  }
  for (let span = 1; span <= 20; span++) {
    t.equal(run(only(300 + span - 1), 300, 300 + span), 300 + span - 1, `the last position of a ${span}-byte run`)
    t.equal(run(none, 300, 300 + span), 300 + span, `a ${span}-byte run without candidates`)
  }
  const two = tableOf([weakSum(buf, 403, 403 + B) | 0, weakSum(buf, 406, 406 + B) | 0])
  t.equal(run(two, 400, 1000), 403, 'two candidates in one eight: the first')
  const firstBitOnly = tableOf([weakSum(buf, 406, 406 + B) | 0])
  setFirstBit(firstBitOnly, weakSum(buf, 402, 402 + B) | 0)
  setFirstBit(firstBitOnly, weakSum(buf, 404, 404 + B) | 0)
  t.equal(run(firstBitOnly, 400, 1000), 406, 'first-bit-only lanes before it are passed over')
  const anchorAt = tableOf([weakSum(buf, 405, 405 + A) | 0])
  t.equal(run(only(407), 400, 1000, anchorAt, true), 405, 'the anchor window stops first')
  t.equal(run(only(407), 400, 1000, anchorAt, false), 407, 'unless anchors are off')
})

t.test('the mirror follows a buffer that moves through the target, and several owners', async (t) => {
  const r = new Prng(5)
  const B = 16
  const A = anchorLengthFor(B)
  const targets = [r.bytes(20000), content(r, 20000)]
  const weaks: number[] = []
  for (const target of targets) for (let i = 0; i < 200; i++) { const q = r.below(target.length - B); weaks.push(weakSum(target, q, q + B) | 0) }
  const block = tableOf(weaks)
  const anchor = tableOf([])
  const kernel = new RollKernel(B, A)
  kernel.sync(block, anchor)
  // Each owner sees its target through a buffer window [base, base + length) that slides on.
  const state = targets.map((target) => ({ target, owner: RollKernel.newOwner(), pos: 0, base: 0, sums: sumsAt(target, 0, B, A) }))
  let steps = 0
  while (state.some((s) => s.pos < s.target.length - B)) {
    const s = r.pick(state)
    const last = s.target.length - B
    if (s.pos >= last) continue
    if (r.below(4) === 0) s.base = r.between(s.base, s.pos) // bytes before pos dropped
    const end = Math.min(s.target.length, s.pos + B + r.between(1, 3000))
    const buf = s.target.slice(s.base, end) // a new buffer each time, as after a grow
    const stop = end - B
    const want = reference(s.target, s.pos, stop, B, A, block, anchor, false)
    const got = s.base + kernel.roll(s.owner, buf, s.base, buf.length, s.pos - s.base, stop - s.base, s.sums, false)
    if (got !== want) return t.fail(`step ${steps}: stopped at ${got}, reference ${want}`)
    if (!sumsMatch(s.sums, s.target, got, B, A, false)) return t.fail(`step ${steps}: wrong sums`)
    s.pos = got
    if (got < stop) {
      rollOne(s.target, got, B, A, s.sums, false)
      s.pos++
    }
    steps++
  }
  t.ok(steps > 100, `${steps} calls`)
})

t.test('the kernel picks up filter changes: a few inserts, many, a new table', async (t) => {
  const r = new Prng(9)
  const B = 64
  const A = anchorLengthFor(B)
  const buf = r.bytes(100000)
  const owner = RollKernel.newOwner()
  const weaks = new Int32Array(5000)
  const table = new WeakTable(5000)
  const anchor = new WeakTable(0)
  const kernel = new RollKernel(B, A)
  const rollFrom = (p: number, tbl: WeakTable): number => {
    kernel.sync(tbl, anchor)
    return kernel.roll(owner, buf, 0, buf.length, p, buf.length - B, sumsAt(buf, p, B, A), false)
  }
  t.equal(rollFrom(0, table), buf.length - B, 'empty: no stop')
  let id = 0
  const add = (q: number): void => {
    weaks[id] = weakSum(buf, q, q + B) | 0
    table.insert(weaks[id]!, id, weaks, CAP)
    id++
  }
  add(50000)
  t.equal(rollFrom(0, table), 50000, 'one insert (the changed words are copied)')
  add(30000)
  add(20000)
  t.equal(rollFrom(0, table), 20000, 'two more')
  for (let i = 0; i < 3000; i++) add(60000 + r.below(30000)) // more changed words than remembered
  add(10000)
  t.equal(rollFrom(0, table), 10000, 'many inserts (the whole filter is copied)')
  t.equal(rollFrom(10001, table), reference(buf, 10001, buf.length - B, B, A, table, anchor, false))
  const other = tableOf([weakSum(buf, 777, 777 + B) | 0])
  t.equal(rollFrom(0, other), 777, 'another table')
  t.equal(rollFrom(0, table), 10000, 'and back')
})

t.test('passes: no false negatives, and few false positives', async (t) => {
  const r = new Prng(11)
  const weaks = Array.from({ length: 20000 }, () => r.next() | 0)
  const table = tableOf(weaks)
  t.ok(weaks.every((w) => passes(w, table.filter, table.filterShift)), 'every inserted weak sum passes')
  let falsePositives = 0
  const n = 200000
  for (let i = 0; i < n; i++) if (passes(r.next() | 0, table.filter, table.filterShift)) falsePositives++
  t.ok(falsePositives / n < 0.001, `${(100 * falsePositives / n).toFixed(3)} % of other weak sums pass`)
})
