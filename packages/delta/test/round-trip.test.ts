import t from 'tap'
import { createStrongHasher } from '../src/index.js'
import { concat, deltify, type Feed, firstDifference, indexOf, rebuild, statsOf } from './helpers/harness.js'
import { Prng } from './helpers/prng.js'

/**
 * A table of seeded cases in the spirit of mutagen's engine_test: each names the server files,
 * the target, and the most literal bytes the delta may carry. Each case runs at two block sizes
 * and with the target fed whole, byte by byte and in random chunks.
 */
const hasher = await createStrongHasher()

interface Case {
  name: string
  /** Server files (fileRef → content), built from a block size B and a seeded source. */
  files: (B: number, r: Prng) => Uint8Array[]
  target: (files: Uint8Array[], B: number, r: Prng) => Uint8Array
  /** Most literal bytes allowed. */
  maxLiteral: (B: number, target: Uint8Array) => number
  /** Exact op count, where the case pins it. */
  ops?: number
}

const cases: Case[] = [
  { name: 'empty base, empty target', files: () => [], target: () => new Uint8Array(0), maxLiteral: () => 0, ops: 0 },
  { name: 'empty base file, empty target', files: () => [new Uint8Array(0)], target: () => new Uint8Array(0), maxLiteral: () => 0, ops: 0 },
  { name: 'empty base, new target', files: () => [], target: (_, B, r) => r.bytes(5 * B + 3), maxLiteral: (_, tg) => tg.length },
  { name: 'base, empty target', files: (B, r) => [r.bytes(4 * B)], target: () => new Uint8Array(0), maxLiteral: () => 0, ops: 0 },
  { name: 'identical, whole blocks', files: (B, r) => [r.bytes(8 * B)], target: ([a]) => a!, maxLiteral: () => 0, ops: 1 },
  { name: 'identical, short last block', files: (B, r) => [r.bytes(8 * B + 5)], target: ([a]) => a!, maxLiteral: () => 0, ops: 1 },
  { name: 'identical, shorter than a block', files: (B, r) => [r.bytes(B - 1)], target: ([a]) => a!, maxLiteral: (B) => B - 1 },
  { name: 'target shorter than a block, base bigger', files: (B, r) => [r.bytes(4 * B)], target: ([a], B) => a!.subarray(0, B - 1), maxLiteral: (B) => B - 1 },
  { name: 'prepend', files: (B, r) => [r.bytes(8 * B)], target: ([a], _, r) => concat(r.bytes(10), a!), maxLiteral: () => 10, ops: 2 },
  { name: 'append', files: (B, r) => [r.bytes(8 * B)], target: ([a], _, r) => concat(a!, r.bytes(10)), maxLiteral: () => 10, ops: 2 },
  { name: 'truncate on a block boundary', files: (B, r) => [r.bytes(8 * B)], target: ([a], B) => a!.subarray(0, 5 * B), maxLiteral: () => 0, ops: 1 },
  { name: 'truncate off a block boundary', files: (B, r) => [r.bytes(8 * B)], target: ([a], B) => a!.subarray(0, 5 * B + 7), maxLiteral: () => 7, ops: 2 },
  { name: 'drop the head on a boundary', files: (B, r) => [r.bytes(8 * B)], target: ([a], B) => a!.subarray(3 * B), maxLiteral: () => 0, ops: 1 },
  { name: 'drop the head off a boundary', files: (B, r) => [r.bytes(8 * B)], target: ([a], B) => a!.subarray(3 * B + 1), maxLiteral: (B) => B - 1 },
  {
    name: 'insert in the middle, on a boundary',
    files: (B, r) => [r.bytes(8 * B)],
    target: ([a], B, r) => concat(a!.subarray(0, 4 * B), r.bytes(33), a!.subarray(4 * B)),
    maxLiteral: () => 33,
    ops: 3,
  },
  {
    name: 'insert in the middle, off a boundary',
    files: (B, r) => [r.bytes(8 * B)],
    target: ([a], B, r) => concat(a!.subarray(0, 4 * B + 9), r.bytes(33), a!.subarray(4 * B + 9)),
    maxLiteral: (B) => B + 33,
  },
  {
    name: 'delete off a boundary',
    files: (B, r) => [r.bytes(8 * B)],
    target: ([a], B) => concat(a!.subarray(0, 4 * B + 9), a!.subarray(4 * B + 20)),
    // the rest of block 4, and of block 5 too when the deletion reaches into it (B = 16)
    maxLiteral: (B) => B >= 20 ? B : 2 * B,
  },
  {
    name: 'delete a whole block',
    files: (B, r) => [r.bytes(8 * B)],
    target: ([a], B) => concat(a!.subarray(0, 4 * B), a!.subarray(5 * B)),
    maxLiteral: () => 0,
    ops: 2,
  },
  {
    name: 'overwrite inside a block (the skip guess)',
    files: (B, r) => [r.bytes(8 * B)],
    target: ([a], B, r) => concat(a!.subarray(0, 4 * B + 2), r.bytes(3), a!.subarray(4 * B + 5)),
    maxLiteral: (B) => B,
    ops: 3,
  },
  {
    name: 'overwrite across a boundary',
    files: (B, r) => [r.bytes(8 * B)],
    target: ([a], B, r) => concat(a!.subarray(0, 4 * B - 2), r.bytes(4), a!.subarray(4 * B + 2)),
    maxLiteral: (B) => 2 * B,
  },
  {
    name: 'a block replaced by a block of another file',
    files: (B, r) => [r.bytes(8 * B), r.bytes(3 * B)],
    target: ([a, b], B) => concat(a!.subarray(0, 4 * B), b!.subarray(B, 2 * B), a!.subarray(5 * B)),
    maxLiteral: () => 0,
    ops: 3,
  },
  {
    name: 'duplicate a range',
    files: (B, r) => [r.bytes(8 * B)],
    target: ([a], B) => concat(a!, a!.subarray(2 * B, 5 * B)),
    maxLiteral: () => 0,
    ops: 2,
  },
  {
    name: 'reorder: swap halves off a boundary',
    files: (B, r) => [r.bytes(8 * B + 11)],
    target: ([a], B) => concat(a!.subarray(4 * B + 3), a!.subarray(0, 4 * B + 3)),
    maxLiteral: (B) => 2 * B,
  },
  {
    name: 'concatenation of three indexed files of odd lengths',
    files: (B, r) => [r.bytes(3 * B + 5), r.bytes(2 * B + 1), r.bytes(4 * B + B - 1)],
    target: ([a, b, c]) => concat(a!, b!, c!),
    maxLiteral: () => 0,
    ops: 3,
  },
  {
    name: 'indexed file at an odd offset inside new data',
    files: (B, r) => [r.bytes(6 * B)],
    target: ([a], B, r) => concat(r.bytes(B + 17), a!, r.bytes(3)),
    maxLiteral: (B) => B + 17 + 3,
    ops: 3,
  },
  {
    name: 'all zeros, against a file with zero blocks',
    files: (B, r) => [concat(r.bytes(B), new Uint8Array(5 * B), r.bytes(B))],
    target: (_, B) => new Uint8Array(7 * B + 3),
    maxLiteral: () => 3,
  },
]

const feeds: Feed[] = ['whole', 'bytes', 'random']

for (const B of [16, 1024]) {
  for (const [i, c] of cases.entries()) {
    t.test(`B=${B}: ${c.name}`, async (t) => {
      const r = new Prng(1000 * B + i)
      const contents = c.files(B, r)
      const files = new Map(contents.map((content, n) => [n + 10, content]))
      const target = c.target(contents, B, r)
      for (const feed of feeds) {
        if (feed === 'bytes' && target.length > 20000) continue
        const index = indexOf(hasher, files, B, feed === 'whole' ? 'whole' : 'random', i)
        const ops = deltify(hasher, index, target, feed, i)
        const rebuilt = rebuild(ops, files)
        t.equal(firstDifference(rebuilt, target), -1, `${feed}: rebuilt byte-exact`)
        const stats = statsOf(ops)
        t.ok(stats.literalBytes <= c.maxLiteral(B, target), `${feed}: ${stats.literalBytes} literal bytes ≤ ${c.maxLiteral(B, target)}`)
        if (c.ops !== undefined) t.equal(stats.ops, c.ops, `${feed}: op count`)
      }
    })
  }
}
