/**
 * Speed of the delta engine on one core: index building (the signature of a 64 MiB file),
 * deltifying a mutated copy of it against that index, and the in-memory reference patch.
 * Seeded, so every run measures the same bytes. Prints Markdown tables.
 *
 * Mutation model: edits of 1–128 bytes at random offsets, each an overwrite, an insert or a
 * delete with equal odds, until the edited bytes reach the rate; 100 % is fresh random data.
 * The index also holds 2,000 small files (100 B – 4 KiB), as a server's would: that turns on the
 * anchor search, whose cost the last column shows by turning it off.
 *
 * Two tables: at the delta package's default block size (4 KiB) and at the product's
 * (`SIG_BLOCK_SIZE`, 1 KiB), where the index holds four times the blocks (a bigger filter) and
 * the anchor window is the same 64 B. The data are the same bytes for both.
 */
import { performance } from 'node:perf_hooks'
import { SIG_BLOCK_SIZE } from '@fsyncd/protocol'
import { applyDelta, BlockIndex, createStrongHasher, DEFAULT_BLOCK_SIZE, type DeltaOp, Deltifier, type StrongHasher } from '@fsyncd/delta'

const MIB = 1024 * 1024
const SIZE = 64 * MIB
const CHUNK = MIB
const RATES = [0, 0.0001, 0.01, 1]
const RUNS = 3
const SMALL_FILES = 2000
const BLOCK_SIZES = [DEFAULT_BLOCK_SIZE, SIG_BLOCK_SIZE]

/** xorshift32: a seeded stream, so runs are comparable. */
function prng (seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return x >>> 0
  }
}

function randomBytes (next: () => number, length: number): Uint8Array {
  const out = new Uint8Array(length)
  const words = new Uint32Array(out.buffer, 0, length >>> 2)
  for (let i = 0; i < words.length; i++) words[i] = next()
  for (let i = words.length * 4; i < length; i++) out[i] = next() & 0xff
  return out
}

function mutate (base: Uint8Array, rate: number, next: () => number): Uint8Array {
  if (rate >= 1) return randomBytes(next, base.length)
  const edits: { at: number, kind: number, length: number }[] = []
  for (let edited = 0; edited < rate * base.length;) {
    const length = 1 + (next() % 128)
    edits.push({ at: next() % base.length, kind: next() % 3, length })
    edited += length
  }
  edits.sort((a, b) => a.at - b.at)
  const parts: Uint8Array[] = []
  let from = 0
  for (const { at, kind, length } of edits) {
    if (at < from) continue
    parts.push(base.subarray(from, at))
    if (kind !== 2) parts.push(randomBytes(next, length)) // overwrite or insert: new bytes
    from = kind === 1 ? at : Math.min(base.length, at + length) // insert keeps, others skip
  }
  parts.push(base.subarray(from))
  return concat(parts)
}

function concat (parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

function buildIndex (hasher: StrongHasher, blockSize: number, base: Uint8Array, small: Uint8Array[]): BlockIndex {
  const index = new BlockIndex(blockSize)
  const writer = index.addFile(1, hasher)
  for (let at = 0; at < base.length; at += CHUNK) writer.push(base.subarray(at, at + CHUNK))
  writer.end()
  for (const [i, content] of small.entries()) {
    const w = index.addFile(2 + i, hasher)
    w.push(content)
    w.end()
  }
  return index
}

function deltify (index: BlockIndex, hasher: StrongHasher, target: Uint8Array, anchors = true): DeltaOp[] {
  const deltifier = new Deltifier(index, hasher, { anchors })
  const ops: DeltaOp[] = []
  for (let at = 0; at < target.length; at += CHUNK) {
    for (const op of deltifier.push(target.subarray(at, at + CHUNK))) ops.push(op)
  }
  for (const op of deltifier.end()) ops.push(op)
  return ops
}

/** Best of RUNS, in MB/s (10⁶ bytes per second) of `bytes`. */
function speed<T> (bytes: number, run: () => T): { mbps: number, result: T } {
  let best = Infinity
  let result: T | undefined
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now()
    result = run()
    best = Math.min(best, performance.now() - start)
  }
  return { mbps: bytes / 1e3 / best, result: result as T }
}

const hasher = await createStrongHasher()
const next = prng(0x5eed)
const base = randomBytes(next, SIZE)
const small = Array.from({ length: SMALL_FILES }, () => randomBytes(next, 100 + (next() % 4000)))
const targets = RATES.map((rate) => mutate(base, rate, next))
for (const [t, blockSize] of BLOCK_SIZES.entries()) {
  if (t > 0) console.log('')
  console.log(`**${blockSize / 1024} KiB blocks**${blockSize === SIG_BLOCK_SIZE ? ' (the product\'s)' : ''}`)
  console.log('')
  console.log(`| mutation | index MB/s | delta MB/s | apply MB/s | literal bytes | ops | round trip | delta MB/s, anchors off |`)
  console.log(`|---:|---:|---:|---:|---:|---:|:---|---:|`)
  for (const [i, rate] of RATES.entries()) {
    const target = targets[i]!
    const { mbps: indexSpeed } = speed(base.length, () => buildIndex(hasher, blockSize, base, []))
    const index = buildIndex(hasher, blockSize, base, small)
    const { mbps: deltaSpeed, result: ops } = speed(target.length, () => deltify(index, hasher, target))
    const { mbps: plainSpeed } = speed(target.length, () => deltify(index, hasher, target, false))
    const read = (_fileRef: number, offset: number, length: number): Uint8Array => base.subarray(offset, offset + length)
    const { mbps: applySpeed, result: rebuilt } = speed(target.length, () => applyDelta(ops, read))
    const literal = ops.reduce((n, op) => n + (op.type === 'literal' ? op.data.length : 0), 0)
    const exact = rebuilt.length === target.length && Buffer.compare(rebuilt, target) === 0
    const cells = [`${rate * 100} %`, indexSpeed, deltaSpeed, applySpeed, literal, ops.length, exact ? 'exact' : 'MISMATCH', plainSpeed]
    console.log(`| ${cells.map((c) => typeof c === 'number' && !Number.isInteger(c) ? c.toFixed(0) : String(c)).join(' | ')} |`)
    if (!exact) process.exitCode = 1
  }
}
