import t from 'tap'
import { createStrongHasher, DEFAULT_BLOCK_SIZE, type DeltaOp } from '../src/index.js'
import { concat, deltify, firstDifference, indexOf, rebuild, statsOf } from './helpers/harness.js'
import { Prng } from './helpers/prng.js'

/** What the design promises in bytes, at the real block size on megabyte files. */
const hasher = await createStrongHasher()
const B = DEFAULT_BLOCK_SIZE
const MB = 1_000_000

function run (files: Map<number, Uint8Array>, target: Uint8Array): { ops: DeltaOp[], literalBytes: number } {
  const index = indexOf(hasher, files, B, 'random')
  const ops = deltify(hasher, index, target, 'random')
  const rebuilt = rebuild(ops, files)
  if (firstDifference(rebuilt, target) !== -1) throw new Error(`rebuilt differs at ${firstDifference(rebuilt, target)}`)
  return { ops, literalBytes: statsOf(ops).literalBytes }
}

const r = new Prng(2024)
const base = r.bytes(4 * MB)
const files = new Map([[1, base]])

t.test('100 bytes inserted into the middle of 4 MB cost less than a block + 200 B', async (t) => {
  const target = concat(base.subarray(0, 2 * MB + 1234), r.bytes(100), base.subarray(2 * MB + 1234))
  const { ops, literalBytes } = run(files, target)
  t.ok(literalBytes < B + 200, `${literalBytes} literal bytes`)
  t.equal(ops.length, 3, 'copy, literal, copy')
})

t.test('100 bytes inserted at the start cost exactly those bytes', async (t) => {
  const { ops, literalBytes } = run(files, concat(r.bytes(100), base))
  t.equal(literalBytes, 100)
  t.equal(ops.length, 2)
})

t.test('an unchanged 4 MB file is one copy op', async (t) => {
  const { ops } = run(files, base)
  t.same(ops, [{ type: 'copy', fileRef: 1, offset: 0, length: base.length }])
})

t.test('10 overwrites of 100 B cost at most two blocks each', async (t) => {
  let target = base.slice()
  for (let i = 0; i < 10; i++) target.set(r.bytes(100), r.below(target.length - 100))
  const { literalBytes } = run(files, target)
  t.ok(literalBytes <= 10 * 2 * B, `${literalBytes} literal bytes`)
  target = base.slice()
  target.set(r.bytes(100), 500 * B + 50) // inside one block: one block of literal, found by the skip guess
  t.equal(run(files, target).literalBytes, B)
})

t.test('a concatenation of two indexed files costs no literal bytes', async (t) => {
  const a = r.bytes(MB + 333)
  const b = r.bytes(MB + 4001)
  const { ops, literalBytes } = run(new Map([[7, a], [8, b]]), concat(a, b))
  t.equal(literalBytes, 0)
  t.same(ops, [
    { type: 'copy', fileRef: 7, offset: 0, length: a.length },
    { type: 'copy', fileRef: 8, offset: 0, length: b.length },
  ])
})

t.test('a file copied from another server file at an odd offset inside new data', async (t) => {
  const head = r.bytes(5000)
  const tail = r.bytes(77)
  const { literalBytes } = run(files, concat(head, base.subarray(B * 3, B * 250), tail))
  t.equal(literalBytes, head.length + tail.length)
})

t.test('a tar-like archive of indexed files costs its headers and the files\' unaligned ends', async (t) => {
  const members = new Map<number, Uint8Array>()
  const parts: Uint8Array[] = []
  for (let i = 0; i < 20; i++) {
    const content = r.bytes(r.between(B, 10 * B))
    members.set(100 + i, content)
    parts.push(r.bytes(512), content, new Uint8Array((512 - (content.length % 512)) % 512))
  }
  const { literalBytes } = run(members, concat(...parts))
  t.ok(literalBytes <= 20 * (512 + 512), `${literalBytes} literal bytes`)
})

t.test('a tar of small server files costs its headers: files shorter than a block are found by their anchor', async (t) => {
  const members = new Map<number, Uint8Array>()
  const parts: Uint8Array[] = []
  let framing = 0
  for (let i = 0; i < 300; i++) {
    const content = r.bytes(r.between(64, B - 1))
    members.set(1000 + i, content)
    const header = r.bytes(512)
    const padding = new Uint8Array((512 - (content.length % 512)) % 512)
    parts.push(header, content, padding)
    framing += header.length + padding.length
  }
  parts.push(new Uint8Array(1024)) // tar's end: the last member may sit in the target's last block, where nothing is looked up
  const tar = concat(...parts)
  const { literalBytes } = run(members, tar)
  t.ok(literalBytes <= framing + 1024 + B, `${literalBytes} literal bytes for ${framing} bytes of headers and padding in ${tar.length}`)
  const index = indexOf(hasher, members, B)
  const without = statsOf(deltify(hasher, index, tar, 'random', 1, { anchors: false })).literalBytes
  t.equal(without, tar.length, 'with anchors off, all literal')
})

t.test('small files sharing a licence header and a trailer are still told apart', async (t) => {
  const header = r.bytes(700)
  const trailer = r.bytes(300)
  const members = new Map<number, Uint8Array>()
  const parts: Uint8Array[] = []
  for (let i = 0; i < 200; i++) {
    const content = concat(header, r.bytes(r.between(20, 2000)), trailer)
    members.set(5000 + i, content)
    parts.push(Uint8Array.of(i, i >> 8, 7), content) // 3 bytes between members, unaligned
  }
  parts.push(new Uint8Array(B))
  const { literalBytes } = run(members, concat(...parts))
  t.equal(literalBytes, 200 * 3 + B)
})

t.test('after an edit inside a file, small files are looked for again two blocks on', async (t) => {
  const small = r.bytes(1000)
  const both = new Map([[1, base], [2, small]])
  const gap = r.bytes(3 * B)
  const target = concat(base.subarray(0, 200 * B), gap, small, base.subarray(300 * B, 400 * B))
  const { ops, literalBytes } = run(both, target)
  t.ok(ops.some((op) => op.type === 'copy' && op.fileRef === 2), 'the small file is found')
  t.equal(literalBytes, gap.length)
})

t.test('fresh data is all literal, in ops of at most maxLiteral, coalesced up to it', async (t) => {
  const fresh = r.bytes(MB)
  const index = indexOf(hasher, files, B)
  const ops = deltify(hasher, index, fresh, 'random', 3, { maxLiteral: 100_000 })
  t.ok(ops.every((op) => op.type === 'literal'))
  const lengths = ops.map((op) => op.type === 'literal' ? op.data.length : 0)
  t.ok(lengths.slice(0, -1).every((n) => n === 100_000), 'every literal but the last is full')
  t.equal(firstDifference(rebuild(ops, files), fresh), -1)
})
