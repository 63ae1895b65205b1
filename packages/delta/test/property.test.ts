import t from 'tap'
import { BlockIndex, createStrongHasher, type DeltaOp, Deltifier, IndexingDeltifier, type StrongHasher } from '../src/index.js'
import { chunks, concat, deltify, type Feed, firstDifference, indexOf, rebuild, statsOf } from './helpers/harness.js'
import { Prng } from './helpers/prng.js'

/**
 * Seeded random scenarios: server files of random lengths, a target assembled from slices of
 * them (aligned or not), new bytes and zeros, then mutated (insert, delete, overwrite, duplicate,
 * reorder), fed in random chunk sizes down to one byte. The delta must rebuild the target
 * byte-exact, pass the server's checks, and carry no more literal bytes than the new bytes plus
 * two blocks per seam (every seam can spoil the blocks that straddle it, and no more).
 */
const hasher = await createStrongHasher()
const ROUNDS = 400

interface Scenario {
  files: Map<number, Uint8Array>
  target: Uint8Array
  /** Bytes in the target that no server file holds, as far as the generator knows. */
  newBytes: number
  seams: number
}

function scenario (r: Prng, B: number): Scenario {
  const files = new Map<number, Uint8Array>()
  const fileCount = r.below(5)
  for (let i = 0; i < fileCount; i++) {
    const blocks = r.below(12)
    const length = r.below(3) === 0 ? blocks * B : blocks * B + r.below(B)
    files.set(r.next(), r.bytes(length))
  }
  const contents = [...files.values()]
  const parts: Uint8Array[] = []
  let newBytes = 0
  let seams = 0
  const segments = r.between(0, 8)
  for (let i = 0; i < segments; i++) {
    const kind = contents.length > 0 ? r.below(4) : 3
    if (kind <= 1) {
      const source = r.pick(contents)
      const start = kind === 0 ? B * r.below(Math.ceil(source.length / B) + 1) : r.below(source.length + 1)
      parts.push(source.subarray(start, start + r.below(source.length - Math.min(start, source.length) + 1)))
    } else {
      const bytes = kind === 2 ? new Uint8Array(r.below(3 * B)) : r.bytes(r.below(3 * B))
      parts.push(bytes)
      newBytes += bytes.length
    }
    seams++
  }
  let target = concat(...parts)
  const mutations = r.below(6)
  for (let i = 0; i < mutations && target.length > 0; i++) {
    const at = r.below(target.length)
    const length = r.between(1, 2 * B)
    switch (r.below(5)) {
      case 0: { // insert
        const bytes = r.bytes(length)
        target = concat(target.subarray(0, at), bytes, target.subarray(at))
        newBytes += length
        break
      }
      case 1: // delete
        target = concat(target.subarray(0, at), target.subarray(at + length))
        break
      case 2: { // overwrite
        const bytes = r.bytes(Math.min(length, target.length - at))
        target = concat(target.subarray(0, at), bytes, target.subarray(at + bytes.length))
        newBytes += bytes.length
        break
      }
      case 3: // duplicate a range
        target = concat(target, target.subarray(at, at + 3 * length))
        break
      default: { // reorder: swap the halves around at
        target = concat(target.subarray(at), target.subarray(0, at))
        break
      }
    }
    seams += 2
  }
  return { files, target, newBytes, seams }
}

t.test('random scenarios rebuild byte-exact and cost no more than their new bytes', async (t) => {
  let checked = 0
  for (let round = 0; round < ROUNDS; round++) {
    const r = new Prng(round + 1)
    const B = r.pick([8, 16, 64, 512])
    const { files, target, newBytes, seams } = scenario(r, B)
    const maxLiteral = r.below(4) === 0 ? r.between(1, 3 * B) : undefined
    const feed: Feed = target.length < 3000 && r.below(3) === 0 ? 'bytes' : 'random'
    const index = indexOf(hasher, files, B, r.pick<Feed>(['whole', 'random', 'bytes']), round)
    // Half the rounds guess a file for the start: right or wrong, the same promises hold.
    const firstGuess = files.size > 0 && r.below(2) === 0 ? r.pick([...files.keys()]) : undefined
    const ops = deltify(hasher, index, target, feed, round, { maxLiteral, firstGuess })
    const rebuilt = rebuild(ops, files, maxLiteral)
    const where = `round ${round} (B=${B}, ${files.size} files, target ${target.length} B, feed ${feed}, first guess ${firstGuess ?? 'none'})`
    if (firstDifference(rebuilt, target) !== -1) {
      t.fail(`${where}: rebuilt differs at byte ${firstDifference(rebuilt, target)}`)
      continue
    }
    const { literalBytes } = statsOf(ops)
    const bound = Math.min(target.length, newBytes + (seams + 1) * 2 * B)
    if (literalBytes > bound) t.fail(`${where}: ${literalBytes} literal bytes > ${bound}`)
    checked++
  }
  t.equal(checked, ROUNDS, 'every round passed')
})

t.test('a deserialized index gives the same delta as the original', async (t) => {
  for (let round = 0; round < 40; round++) {
    const r = new Prng(9000 + round)
    const B = r.pick([8, 64, 512])
    const { files, target } = scenario(r, B)
    const index = indexOf(hasher, files, B)
    const copy = BlockIndex.deserialize(index.serialize())
    t.same(deltify(hasher, copy, target, 'random', round), deltify(hasher, index, target, 'random', round), `round ${round}`)
  }
})

/** Deltifies `target` with an IndexingDeltifier that indexes it as `fileRef`; returns the ops. */
function deltifyAndIndex (index: BlockIndex, target: Uint8Array, fileRef: number, feed: Feed, seed: number, writerHasher: StrongHasher = hasher): DeltaOp[] {
  const writer = index.addFile(fileRef, writerHasher)
  const d = new IndexingDeltifier(new Deltifier(index, hasher), index, writer)
  const ops: DeltaOp[] = []
  // The caller's chunk may be reused once push returns: one buffer, scribbled over after each push.
  const reused = new Uint8Array(target.length)
  for (const chunk of chunks(target, feed, new Prng(seed))) {
    const view = reused.subarray(0, chunk.length)
    view.set(chunk)
    ops.push(...d.push(view))
    view.fill(0xa5)
  }
  ops.push(...d.end())
  writer.end()
  return ops
}

t.test('IndexingDeltifier: the same ops, and the same index of the target as summing its bytes', async (t) => {
  let checked = 0
  for (let round = 0; round < 200; round++) {
    const r = new Prng(5000 + round)
    const B = r.pick([8, 16, 64, 512])
    const { files, target } = scenario(r, B)
    const feed = r.pick<Feed>(['whole', 'random', 'bytes'])
    const fileRef = 0x7fff_0000 + round
    const viaDelta = indexOf(hasher, files, B)
    const ops = deltifyAndIndex(viaDelta, target, fileRef, feed, round)
    const plain = indexOf(hasher, new Map([...files, [fileRef, target]]), B)
    const where = `round ${round} (B=${B}, target ${target.length} B, feed ${feed})`
    if (JSON.stringify(ops.map((o) => o.type === 'copy' ? o : o.data.length)) !== JSON.stringify(deltify(hasher, indexOf(hasher, files, B), target, feed, round).map((o) => o.type === 'copy' ? o : o.data.length))) {
      t.fail(`${where}: ops differ from the Deltifier's`)
      continue
    }
    if (Buffer.compare(viaDelta.serialize(), plain.serialize()) !== 0) {
      t.fail(`${where}: the target's index differs from summing its bytes`)
      continue
    }
    checked++
  }
  t.equal(checked, 200, 'every round passed')
})

t.test('IndexingDeltifier: an edit in place sums only the changed blocks', async (t) => {
  const B = 64
  const r = new Prng(77)
  const base = r.bytes(100 * B)
  const edited = base.slice()
  edited.set(r.bytes(10), 40 * B + 5) // inside block 40
  let summed = 0
  const counting: StrongHasher = { strong64: (data, start, end) => { summed++; return hasher.strong64(data, start, end) } }
  const index = indexOf(hasher, new Map([[1, base]]), B)
  deltifyAndIndex(index, edited, 2, 'random', 1, counting)
  t.ok(summed <= 2, `${summed} of 100 blocks summed`)
  t.equal(Buffer.compare(index.serialize(), indexOf(hasher, new Map([[1, base], [2, edited]]), B).serialize()), 0, 'same index as summing every block')

  summed = 0
  const shifted = concat(base.subarray(0, 10 * B + 3), r.bytes(7), base.subarray(10 * B + 3))
  const index2 = indexOf(hasher, new Map([[1, base]]), B)
  deltifyAndIndex(index2, shifted, 2, 'random', 1, counting)
  t.ok(summed >= 90, `after an insertion the blocks are summed from their bytes (${summed})`)
  t.equal(Buffer.compare(index2.serialize(), indexOf(hasher, new Map([[1, base], [2, shifted]]), B).serialize()), 0, 'and the index is right')
})

t.test('IndexingDeltifier holds at most maxCopy and a chunk of the target, however long the unchanged stretch', async (t) => {
  const B = 64
  const r = new Prng(99)
  const base = r.bytes(2 * 1024 * 1024)
  const target = concat(base, r.bytes(1000)) // unchanged, then an append
  const run = (maxCopy: number | undefined): number => {
    const index = indexOf(hasher, new Map([[1, base]]), B)
    const writer = index.addFile(2, hasher)
    const d = new IndexingDeltifier(new Deltifier(index, hasher, maxCopy === undefined ? {} : { maxCopy }), index, writer)
    let most = 0
    for (let at = 0; at < target.length; at += 4096) {
      d.push(target.slice(at, at + 4096))
      most = Math.max(most, d.held)
    }
    d.end()
    writer.end()
    t.equal(Buffer.compare(index.serialize(), indexOf(hasher, new Map([[1, base], [2, target]]), B).serialize()), 0, 'and indexes the target right')
    return most
  }
  const bounded = run(16 * 1024)
  t.ok(bounded <= 16 * 1024 + 4096 + 4 * B, `with maxCopy 16 KiB: at most ${bounded} B held`)
  const unbounded = run(undefined)
  t.ok(unbounded > 1024 * 1024, `without it the whole unchanged stretch is held (${unbounded} B): what the bound is for`)
})

t.test('the first guess is tried before the weak table: the previous version is the source of an unchanged start', async (t) => {
  const B = 64
  const content = new Prng(7).bytes(40 * B + 10)
  const edited = concat(content.subarray(0, 30 * B), new Prng(8).bytes(5), content.subarray(30 * B + 5))
  const files = new Map([[1, content], [2, content]]) // the same content twice: the table finds one
  const index = indexOf(hasher, files, B)
  const found = deltify(hasher, index, edited, 'random', 3)
  const source = found.find((op) => op.type === 'copy')
  t.ok(source?.type === 'copy', 'without a guess, copies from the file the table finds')
  const other = source?.type === 'copy' && source.fileRef === 1 ? 2 : 1
  const guessed = deltify(hasher, index, edited, 'random', 3, { firstGuess: other })
  t.same(rebuild(guessed, files), edited, 'rebuilds the target')
  const copies = guessed.filter((op) => op.type === 'copy')
  t.ok(copies.length > 0 && copies.every((op) => op.type === 'copy' && op.fileRef === other), `with file ${other} guessed, every copy is from it (the next blocks follow the match)`)
  t.equal(statsOf(guessed).literalBytes, statsOf(found).literalBytes, 'and the literal is the same')
})

t.test('a first guess that misses does not stop the search for small files at the start', async (t) => {
  const B = 1024
  const r = new Prng(11)
  const small = r.bytes(700) // shorter than a block: found by its anchor
  const files = new Map([[1, small], [2, r.bytes(10 * B)]])
  const target = concat(small, r.bytes(5000))
  const index = indexOf(hasher, files, B)
  for (const firstGuess of [undefined, 2]) {
    const ops = deltify(hasher, index, target, 'whole', 1, { firstGuess })
    t.same(rebuild(ops, files), target, `rebuilt (guess ${String(firstGuess)})`)
    t.equal(statsOf(ops).literalBytes, 5000, `the small file is copied, only the new bytes are literal (guess ${String(firstGuess)})`)
  }
})
