import { applyDelta, BlockIndex, type DeltaOp, Deltifier, type DeltifierOptions, PatchChecker, type StrongHasher } from '../../src/index.js'
import { Prng } from './prng.js'

/** How a target is fed to the deltifier. */
export type Feed = 'whole' | 'bytes' | 'random' | number

export function concat (...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

/** An index of `files` (fileRef → content), each pushed in chunks cut by `feed`. */
export function indexOf (hasher: StrongHasher, files: Map<number, Uint8Array>, blockSize: number, feed: Feed = 'whole', seed = 1): BlockIndex {
  const index = new BlockIndex(blockSize)
  const prng = new Prng(seed)
  for (const [fileRef, content] of files) {
    const writer = index.addFile(fileRef, hasher)
    for (const chunk of chunks(content, feed, prng)) writer.push(chunk)
    writer.end()
  }
  return index
}

export function * chunks (data: Uint8Array, feed: Feed, prng: Prng): Iterable<Uint8Array> {
  if (feed === 'whole') {
    yield data
    return
  }
  for (let at = 0; at < data.length;) {
    const n = feed === 'bytes' ? 1 : feed === 'random' ? randomChunkLength(prng) : feed
    yield data.subarray(at, at + n)
    at += n
  }
}

/** Mostly small, sometimes 1 byte, sometimes several blocks. */
function randomChunkLength (prng: Prng): number {
  switch (prng.below(4)) {
    case 0: return 1
    case 1: return prng.between(1, 100)
    case 2: return prng.between(1, 5000)
    default: return prng.between(1, 70000)
  }
}

export function deltify (hasher: StrongHasher, index: BlockIndex, target: Uint8Array, feed: Feed = 'whole', seed = 2, opts?: DeltifierOptions): DeltaOp[] {
  const deltifier = new Deltifier(index, hasher, opts)
  const ops: DeltaOp[] = []
  for (const chunk of chunks(target, feed, new Prng(seed))) ops.push(...deltifier.push(chunk))
  ops.push(...deltifier.end())
  return ops
}

export interface DeltaStats {
  literalBytes: number
  copyBytes: number
  ops: number
}

export function statsOf (ops: DeltaOp[]): DeltaStats {
  let literalBytes = 0
  let copyBytes = 0
  for (const op of ops) {
    if (op.type === 'literal') literalBytes += op.data.length
    else copyBytes += op.length
  }
  return { literalBytes, copyBytes, ops: ops.length }
}

/**
 * Rebuilds the target from `ops` against `files` after checking every op the way a server
 * would, and checks the shape promises: no empty op, adjacent copies coalesced.
 */
export function rebuild (ops: DeltaOp[], files: Map<number, Uint8Array>, maxLiteral = 256 * 1024): Uint8Array {
  const checker = new PatchChecker({ sourceLength: (ref) => files.get(ref)?.length, maxLiteralLength: maxLiteral })
  let previous: DeltaOp | undefined
  for (const op of ops) {
    checker.check(op)
    if (op.type === 'copy' && previous?.type === 'copy' && previous.fileRef === op.fileRef &&
        previous.offset + previous.length === op.offset) {
      throw new Error(`copies not coalesced: ${JSON.stringify(previous)} then ${JSON.stringify(op)}`)
    }
    previous = op
  }
  return applyDelta(ops, (ref, offset, length) => files.get(ref)!.subarray(offset, offset + length))
}

/** Whether two byte arrays are equal, with the first difference for the message. */
export function firstDifference (a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return a.length === b.length ? -1 : n
}
