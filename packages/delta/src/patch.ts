import type { CopyOp, DeltaOp } from './delta-op.js'
import { DeltaError } from './errors.js'

/**
 * The patch side. The engine does no I/O, so it does not rebuild files on a disk: the server
 * reads the source ranges and writes the target itself. What the engine owns is the judgement of
 * whether an op from the network is safe to execute, in one place, before any byte is read.
 */

/**
 * Throws `DeltaError` BAD_COPY unless the copy is a positive length of a u32 file, at a
 * non-negative offset, ending within `sourceLength` bytes. The end is checked by subtraction:
 * `offset + length` can round past 2⁵³ and compare equal to a length it exceeds.
 */
export function checkCopy (op: CopyOp, sourceLength: number): void {
  const { fileRef, offset, length } = op
  if (!Number.isInteger(fileRef) || fileRef < 0 || fileRef > 0xffffffff) {
    throw new DeltaError('BAD_COPY', `copy names file ${String(fileRef)}, not a u32`)
  }
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new DeltaError('BAD_COPY', `copy from file ${fileRef} at offset ${String(offset)}, not a non-negative safe integer`)
  }
  if (!Number.isSafeInteger(length) || length <= 0) {
    throw new DeltaError('BAD_COPY', `copy from file ${fileRef} of length ${String(length)}, not a positive safe integer`)
  }
  if (offset > sourceLength || length > sourceLength - offset) {
    throw new DeltaError('BAD_COPY',
      `copy of ${length} bytes at offset ${offset} runs past the end of file ${fileRef} (${sourceLength} bytes)`)
  }
}

export interface PatchLimits {
  /** Byte length of a source file the patcher holds; undefined when it holds none by that ref. */
  sourceLength: (fileRef: number) => number | undefined
  /** Most bytes the ops may rebuild (default: a safe integer's worth). */
  maxTargetLength?: number
  /** Longest literal accepted (default 16 MiB). */
  maxLiteralLength?: number
}

export const DEFAULT_MAX_PATCH_LITERAL = 16 * 1024 * 1024

/**
 * Checks the ops of one target file in order, as they arrive: each copy against its source's
 * length, each literal's size, and the running target length against the limit.
 */
export class PatchChecker {
  readonly #limits: Required<PatchLimits>
  #targetLength = 0

  constructor (limits: PatchLimits) {
    this.#limits = {
      maxTargetLength: Number.MAX_SAFE_INTEGER,
      maxLiteralLength: DEFAULT_MAX_PATCH_LITERAL,
      ...limits,
    }
  }

  /** Bytes rebuilt by the ops checked so far. */
  get targetLength (): number {
    return this.#targetLength
  }

  /** Throws a `DeltaError` if `op` is not safe to execute; otherwise counts its bytes. */
  check (op: DeltaOp): void {
    let length: number
    if (op.type === 'copy') {
      const sourceLength = Number.isInteger(op.fileRef) ? this.#limits.sourceLength(op.fileRef) : undefined
      if (sourceLength === undefined) {
        throw new DeltaError('UNKNOWN_SOURCE', `copy names file ${String(op.fileRef)}, which the patcher does not hold`)
      }
      checkCopy(op, sourceLength)
      length = op.length
    } else if (op.type === 'literal') {
      if (!(op.data instanceof Uint8Array)) throw new DeltaError('BAD_LITERAL', 'literal data is not bytes')
      length = op.data.length
      if (length === 0) throw new DeltaError('BAD_LITERAL', 'empty literal')
      if (length > this.#limits.maxLiteralLength) {
        throw new DeltaError('BAD_LITERAL', `literal of ${length} bytes is over the ${this.#limits.maxLiteralLength}-byte limit`)
      }
    } else {
      throw new DeltaError('BAD_COPY', `unknown op type ${String((op as { type: unknown }).type)}`)
    }
    if (length > this.#limits.maxTargetLength - this.#targetLength) {
      throw new DeltaError('TARGET_TOO_LARGE', `ops rebuild more than ${this.#limits.maxTargetLength} bytes`)
    }
    this.#targetLength += length
  }
}

/** Reads `length` bytes of a source file from `offset`. */
export type ReadSource = (fileRef: number, offset: number, length: number) => Uint8Array

/**
 * The reference patcher, all in memory: the target the ops describe. Tests and small callers
 * use it; the server streams instead. Throws if a read returns a different length than asked.
 */
export function applyDelta (ops: Iterable<DeltaOp>, readSource: ReadSource): Uint8Array {
  const parts: Uint8Array[] = []
  let total = 0
  for (const op of ops) {
    let data: Uint8Array
    if (op.type === 'copy') {
      checkCopy(op, Number.MAX_SAFE_INTEGER)
      data = readSource(op.fileRef, op.offset, op.length)
      if (data.length !== op.length) {
        throw new DeltaError('BAD_COPY', `source ${op.fileRef} gave ${data.length} bytes at ${op.offset}, not ${op.length}`)
      }
    } else {
      data = op.data
    }
    parts.push(data)
    total += data.length
  }
  const target = new Uint8Array(total)
  let at = 0
  for (const part of parts) {
    target.set(part, at)
    at += part.length
  }
  return target
}
