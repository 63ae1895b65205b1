import t from 'tap'
import { BlockIndex, createStrongHasher, DeltaError, Deltifier, type DeltaOp } from '../src/index.js'
import { concat, deltify, firstDifference, indexOf, rebuild, statsOf } from './helpers/harness.js'
import { Prng } from './helpers/prng.js'
import { WeakTable } from '../src/weak-table.js'

const hasher = await createStrongHasher()
const B = 64

function add (index: BlockIndex, fileRef: number, content: Uint8Array): void {
  const writer = index.addFile(fileRef, hasher)
  writer.push(content)
  writer.end()
}

t.test('bookkeeping: hasFile, fileRefs, fileLength, size', async (t) => {
  const index = new BlockIndex(B)
  t.equal(index.blockSize, B)
  t.equal(new BlockIndex().blockSize, 4096)
  const r = new Prng(1)
  add(index, 5, r.bytes(3 * B))
  add(index, 0xffffffff, r.bytes(2 * B + 1))
  add(index, 0, new Uint8Array(0))
  t.ok(index.hasFile(5) && index.hasFile(0xffffffff) && index.hasFile(0))
  t.notOk(index.hasFile(6))
  t.same([...index.fileRefs()].sort((a, b) => a - b), [0, 5, 0xffffffff])
  t.equal(index.fileLength(0xffffffff), 2 * B + 1)
  t.equal(index.fileLength(6), undefined)
  t.equal(index.size, 3 + 3 + 0, 'short last blocks count, empty files have none')
  index.removeFile(5)
  index.removeFile(5)
  t.notOk(index.hasFile(5))
  t.equal(index.size, 3)
})

t.test('a file is invisible until its writer ends', async (t) => {
  const index = new BlockIndex(B)
  const content = new Prng(2).bytes(10 * B)
  const writer = index.addFile(1, hasher)
  writer.push(content)
  t.notOk(index.hasFile(1))
  t.same(statsOf(deltify(hasher, index, content)).copyBytes, 0)
  writer.end()
  t.ok(index.hasFile(1))
  t.same(deltify(hasher, index, content), [{ type: 'copy', fileRef: 1, offset: 0, length: content.length }])
})

t.test('misuse throws DeltaError MISUSE', async (t) => {
  const index = new BlockIndex(B)
  const writer = index.addFile(1, hasher)
  const twin = index.addFile(1, hasher)
  index.addFile(1, hasher) // dropped: no trace
  writer.end()
  t.throws(() => twin.end(), { code: 'MISUSE' }, 'the same file written twice at once')
  t.throws(() => writer.end(), { code: 'MISUSE' })
  t.throws(() => writer.push(new Uint8Array(1)), { code: 'MISUSE' })
  t.throws(() => index.addFile(1, hasher), { code: 'MISUSE' }, 'already indexed')
  for (const ref of [-1, 1.5, 2 ** 32, NaN]) t.throws(() => index.addFile(ref, hasher), DeltaError, `fileRef ${ref}`)
  for (const size of [0, 7, 2 ** 24 + 1, 100.5]) t.throws(() => new BlockIndex(size), { code: 'MISUSE' }, `block size ${size}`)
  t.throws(() => new Deltifier(index, hasher, { maxLiteral: 0 }), { code: 'MISUSE' })
  const deltifier = new Deltifier(index, hasher)
  deltifier.end()
  t.throws(() => deltifier.push(new Uint8Array(1)), { code: 'MISUSE' })
  t.throws(() => deltifier.end(), { code: 'MISUSE' })
})

t.test('removed files are never named again; compaction keeps the rest intact', async (t) => {
  const r = new Prng(3)
  const files = new Map<number, Uint8Array>()
  const index = new BlockIndex(B)
  for (let ref = 1; ref <= 60; ref++) {
    const content = r.bytes(r.between(0, 20 * B))
    files.set(ref, content)
    add(index, ref, content)
  }
  const target = concat(...[...files.values()])
  // remove two thirds, in an order that makes holes everywhere and forces compactions
  for (let ref = 1; ref <= 60; ref++) {
    if (ref % 3 !== 0) {
      index.removeFile(ref)
      files.delete(ref)
    }
  }
  const ops = deltify(hasher, index, target, 'random')
  t.ok(ops.every((op) => op.type === 'literal' || files.has(op.fileRef)), 'only live files are named')
  t.equal(firstDifference(rebuild(ops, files), target), -1)
  // a file shorter than its anchor cannot be found: it is sent as literal
  const kept = [...files.values()].reduce((n, c) => n + (c.length >= index.anchorLength ? c.length : 0), 0)
  t.equal(statsOf(ops).copyBytes, kept, 'every byte of every live file no shorter than an anchor is copied')
  // and files added after compaction are found too
  const late = r.bytes(9 * B + 3)
  add(index, 1000, late)
  files.set(1000, late)
  t.same(deltify(hasher, index, late), [{ type: 'copy', fileRef: 1000, offset: 0, length: late.length }])
})

t.test('removing files keeps every other block findable (tombstones keep probe chains whole)', async (t) => {
  const r = new Prng(8)
  const files = new Map<number, Uint8Array>()
  const index = new BlockIndex(16)
  for (let ref = 0; ref < 3000; ref++) {
    const content = r.bytes(16)
    files.set(ref, content)
    add(index, ref, content)
  }
  // a quarter: fewer than compaction needs, so the table is not rebuilt
  for (let ref = 0; ref < 3000; ref += 4) index.removeFile(ref)
  let lost = 0
  for (const [ref, content] of files) {
    if (ref % 4 === 0) continue
    const ops = deltify(hasher, index, content)
    if (ops.length !== 1 || ops[0]!.type !== 'copy') lost++
  }
  t.equal(lost, 0)
})

t.test('the index may change between pushes of one deltifier', async (t) => {
  const r = new Prng(4)
  const a = r.bytes(40 * B)
  const b = r.bytes(40 * B)
  const files = new Map([[1, a], [2, b]])
  const index = indexOf(hasher, new Map([[1, a]]), B)
  const deltifier = new Deltifier(index, hasher)
  const ops: DeltaOp[] = []
  const target = concat(a, b, a)
  ops.push(...deltifier.push(target.subarray(0, 20 * B)))
  add(index, 2, b) // b becomes available halfway through a
  ops.push(...deltifier.push(target.subarray(20 * B, 60 * B)))
  index.removeFile(1) // a goes away: the second copy of a is literal
  ops.push(...deltifier.push(target.subarray(60 * B)))
  ops.push(...deltifier.end())
  t.equal(firstDifference(rebuild(ops, files), target), -1)
  const literal = statsOf(ops).literalBytes
  t.ok(literal >= 38 * B && literal <= 42 * B, `${literal} literal bytes: about the second copy of a`)
  t.ok(ops.some((op) => op.type === 'copy' && op.fileRef === 2), 'b is used')
})

t.test('big changes leave the weak table to the next lookup, which sees them all', async (t) => {
  const r = new Prng(12)
  const files = new Map<number, Uint8Array>()
  const index = new BlockIndex(B)
  const put = (ref: number, content: Uint8Array): void => { files.set(ref, content); add(index, ref, content) }
  const drop = (ref: number): void => { files.delete(ref); index.removeFile(ref) }
  for (let ref = 0; ref < 40; ref++) put(ref, r.bytes(4 * B)) // small: inserted as they come
  put(100, r.bytes(400 * B)) // grows the index by far more than a quarter: the table goes stale
  for (let ref = 0; ref < 40; ref += 2) drop(ref) // removed while stale
  put(200, r.bytes(B / 2 + 7)) // anchored (shorter than a block): the anchor table stays current
  put(201, r.bytes(3 * B))
  drop(100) // most of the index: compaction, while stale
  put(300, r.bytes(50 * B))
  const check = (label: string): void => {
    for (const [ref, content] of files) {
      if (content.length < B) continue // found by its anchor inside bigger data (below), not alone
      const ops = deltify(hasher, index, content)
      t.ok(ops.length === 1 && ops[0]!.type === 'copy' && ops[0]!.fileRef === ref, `${label}: file ${ref} is one copy of itself`)
    }
  }
  check('after the big changes')
  const unseen = concat(...[...files.values()])
  const ops = deltify(hasher, index, unseen)
  t.equal(statsOf(ops).literalBytes, 0, 'their concatenation is all copies')
  t.notOk(ops.some((op) => op.type === 'copy' && (op.fileRef === 100 || op.fileRef % 2 === 0 && op.fileRef < 40)), 'removed files are never named')
  put(400, r.bytes(8 * B)) // small, after the rebuild: inserted again
  check('after a small add')
})

t.test('many equal blocks: capped candidates, still exact and cheap', async (t) => {
  const zeros = new Uint8Array(5000 * B)
  const files = new Map<number, Uint8Array>([[1, zeros]])
  const index = indexOf(hasher, files, B)
  const target = concat(new Uint8Array(777), new Prng(5).bytes(B), new Uint8Array(100 * B))
  const ops = deltify(hasher, index, target, 'random')
  t.equal(firstDifference(rebuild(ops, files), target), -1)
  t.ok(statsOf(ops).literalBytes <= 2 * B, `${statsOf(ops).literalBytes} literal bytes`)
})

t.test('a large index grows its table and still finds every file', async (t) => {
  const r = new Prng(6)
  const files = new Map<number, Uint8Array>()
  for (let ref = 0; ref < 300; ref++) files.set(ref, r.bytes(r.between(1, 200) * 16))
  const index = indexOf(hasher, files, 16)
  for (const ref of [0, 150, 299]) {
    const content = files.get(ref)!
    t.same(deltify(hasher, index, content), [{ type: 'copy', fileRef: ref, offset: 0, length: content.length }], `file ${ref}`)
  }
})

t.test('WeakTable.insertRange (a rebuild) lays a table out exactly as inserts one by one', async (t) => {
  const r = new Prng(21)
  const n = 20_000
  const weaks = new Int32Array(n)
  // Random sums, some repeated past the cap of 3 used here.
  for (let i = 0; i < n; i++) weaks[i] = i % 10 === 0 ? 12345 : r.next() | 0
  const one = new WeakTable(n)
  for (let id = 0; id < n; id++) one.insert(weaks[id]!, id, weaks, 3)
  const bulk = new WeakTable(n)
  bulk.insertRange(weaks, 0, n, 3)
  t.equal(bulk.live, one.live, 'same entries kept')
  t.equal(bulk.count(12345, weaks, 100), 3, 'capped')
  t.same(bulk.filter, one.filter, 'same filter')
  let differ = 0
  let slots = 0
  for (; !Number.isNaN(one.entryAt(slots)); slots++) if (bulk.entryAt(slots) !== one.entryAt(slots)) differ++
  t.ok(slots > n, `${slots} slots compared`)
  t.equal(differ, 0, 'same slots')
  t.not(bulk.version, 0, 'a copy of its filter sees it changed')
})
