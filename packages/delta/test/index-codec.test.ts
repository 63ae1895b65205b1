import t from 'tap'
import { BlockIndex, createStrongHasher } from '../src/index.js'
import { encodeBlockIndex } from '../src/index-codec.js'
import { deltify, indexOf } from './helpers/harness.js'
import { Prng } from './helpers/prng.js'

const hasher = await createStrongHasher()
const r = new Prng(77)
const files = new Map<number, Uint8Array>([
  [3, r.bytes(10 * 64 + 5)],
  [0xfffffffe, r.bytes(64)],
  [9, new Uint8Array(0)],
  [12, r.bytes(7)],
  [13, r.bytes(50)], // found by its anchor
])
const index = indexOf(hasher, files, 64)
const bytes = index.serialize()

t.test('round trip keeps files, lengths, size and deltas', async (t) => {
  t.equal(bytes.length, 24 + files.size * 16 + index.size * 12, '12 bytes per block, 16 per file')
  const copy = BlockIndex.deserialize(bytes)
  t.equal(copy.blockSize, 64)
  t.equal(copy.size, index.size)
  t.same([...copy.fileRefs()].sort(), [...index.fileRefs()].sort())
  for (const ref of files.keys()) t.equal(copy.fileLength(ref), index.fileLength(ref))
  const target = new Uint8Array([...files.get(12)!, ...files.get(3)!, 1, 2, 3, ...files.get(13)!, ...files.get(0xfffffffe)!, ...r.bytes(64)])
  const ops = deltify(hasher, copy, target)
  t.same(ops, deltify(hasher, index, target))
  t.ok(ops.some((op) => op.type === 'copy' && op.fileRef === 13), 'the anchored file is found')
  t.same(copy.serialize(), bytes, 'serializes to the same bytes')
})

t.test('an empty index round-trips', async (t) => {
  const empty = BlockIndex.deserialize(new BlockIndex(128).serialize())
  t.equal(empty.size, 0)
  t.equal(empty.blockSize, 128)
})

t.test('an index after removals round-trips without the removed files', async (t) => {
  const copy = BlockIndex.deserialize(bytes)
  copy.removeFile(3)
  const again = BlockIndex.deserialize(copy.serialize())
  t.notOk(again.hasFile(3))
  t.equal(again.size, index.size - 11)
})

t.test('input at an odd byte offset decodes', async (t) => {
  const shifted = new Uint8Array(bytes.length + 1)
  shifted.set(bytes, 1)
  t.equal(BlockIndex.deserialize(shifted.subarray(1)).size, index.size)
  // A Buffer too (what msgpack hands out): its slice() is a view, not a copy.
  const buffer = Buffer.concat([Buffer.alloc(3), bytes]).subarray(3)
  t.equal(BlockIndex.deserialize(buffer).size, index.size, 'a Buffer at an odd offset')
})

t.test('every truncation throws BAD_INDEX', async (t) => {
  let thrown = 0
  for (let n = 0; n < bytes.length; n++) {
    try {
      BlockIndex.deserialize(bytes.subarray(0, n))
    } catch (err) {
      if ((err as { code?: string }).code === 'BAD_INDEX') thrown++
    }
  }
  t.equal(thrown, bytes.length)
  t.throws(() => BlockIndex.deserialize(new Uint8Array([...bytes, 0, 0, 0, 0])), { code: 'BAD_INDEX' }, 'trailing bytes')
})

t.test('every single-byte corruption throws BAD_INDEX', async (t) => {
  let thrown = 0
  for (let at = 0; at < bytes.length; at++) {
    const bad = bytes.slice()
    bad[at]! ^= 1 << (at % 8)
    try {
      BlockIndex.deserialize(bad)
    } catch (err) {
      if ((err as { code?: string }).code === 'BAD_INDEX') thrown++
    }
  }
  t.equal(thrown, bytes.length)
})

t.test('garbage throws BAD_INDEX and never hangs', async (t) => {
  const g = new Prng(5)
  for (let i = 0; i < 200; i++) {
    const junk = g.bytes(g.below(2000))
    if (i % 2 === 0 && junk.length >= 4) junk.set([0x46, 0x53, 0x42, 0x49]) // right magic, wrong rest
    t.throws(() => BlockIndex.deserialize(junk), { code: 'BAD_INDEX' })
  }
  // a header claiming 2^32 - 1 files and entries must be rejected before anything is allocated
  const huge = bytes.slice(0, 24)
  new DataView(huge.buffer).setUint32(12, 0xffffffff, true)
  new DataView(huge.buffer).setUint32(16, 0xffffffff, true)
  t.throws(() => BlockIndex.deserialize(huge), { code: 'BAD_INDEX' })
})

t.test('well-checksummed but inconsistent content throws BAD_INDEX', async (t) => {
  const weaks = new Int32Array(2)
  const strongs = new BigUint64Array(2)
  const file = (fileRef: number, length: number, anchorOffset = 0): { fileRef: number, length: number, anchorOffset: number } =>
    ({ fileRef, length, anchorOffset })
  const valid = { blockSize: 64, files: [file(1, 100)], weaks, strongs }
  t.doesNotThrow(() => BlockIndex.deserialize(encodeBlockIndex(valid)))
  const invalid: [string, Parameters<typeof encodeBlockIndex>[0]][] = [
    ['entry count differs from the files\' blocks', { ...valid, files: [file(1, 200)] }],
    ['a fileRef twice', { ...valid, files: [file(1, 64), file(1, 64)] }],
    ['an anchor past the end of its file', { ...valid, files: [file(1, 40, 25), file(2, 64)] }],
    ['an anchor on a file of a block or more', { ...valid, files: [file(1, 100, 1)] }],
    ['a block size under the minimum', { ...valid, blockSize: 4, files: [file(1, 8)] }],
    ['a length past 2^53', { ...valid, files: [file(1, 2 ** 53 + 2 * 64)] }],
  ]
  for (const [why, parts] of invalid) t.throws(() => BlockIndex.deserialize(encodeBlockIndex(parts)), { code: 'BAD_INDEX' }, why)
})

t.test('importFile: a file copied from another index is found as in its own', async (t) => {
  const { BlockIndex, Deltifier, createStrongHasher, applyDelta } = await import('../src/index.js')
  const hasher = await createStrongHasher()
  const content = new Uint8Array(50_000)
  let x = 7
  for (let i = 0; i < content.length; i++) { x = (x * 1103515245 + 12345) >>> 0; content[i] = x >>> 24 }
  const source = new BlockIndex(1024)
  const w = source.addFile(0, hasher)
  w.push(content)
  w.end()
  const target = new BlockIndex(1024)
  target.importFile(BlockIndex.deserialize(source.serialize()), 0, 42)
  t.ok(target.hasFile(42))
  t.equal(target.fileLength(42), content.length)
  const edited = new Uint8Array(content.length + 10)
  edited.set(content.subarray(0, 20_000))
  edited.set(content.subarray(20_000), 20_010)
  const d = new Deltifier(target, hasher)
  const ops = [...d.push(edited), ...d.end()]
  const literal = ops.reduce((n, op) => n + (op.type === 'literal' ? op.data.length : 0), 0)
  t.ok(literal < 2 * 1024 + 10, `only the blocks around the edit are literal (${literal} bytes)`)
  const rebuilt = applyDelta(ops, (ref, off, len) => { t.equal(ref, 42); return content.subarray(off, off + len) })
  t.same(Buffer.from(rebuilt), Buffer.from(edited), 'byte-exact')
  t.throws(() => target.importFile(source, 0, 42), { code: 'MISUSE' }, 'a ref twice is refused')
  t.throws(() => new BlockIndex(2048).importFile(source, 0, 1), { code: 'MISUSE' }, 'block sizes must match')
})
