/**
 * What a delta is made of. A target file is rebuilt by appending, in order, the bytes each op
 * names: a range of a server file, or new bytes.
 */
export type DeltaOp = CopyOp | LiteralOp

/** `length` bytes of server file `fileRef` from byte `offset`. Offsets and lengths are safe integers. */
export interface CopyOp { type: 'copy', fileRef: number, offset: number, length: number }

/** Bytes the server does not hold. The deltifier hands out fresh arrays: the caller may keep them. */
export interface LiteralOp { type: 'literal', data: Uint8Array }

/**
 * Collects ops as the deltifier finds them, merging a copy that continues the previous one (same
 * file, next offset) into it: an unchanged file becomes one copy op however many blocks it has.
 * The pending copy is held back until something else comes or `finish()`, so it may outlive
 * several `take()` calls.
 */
export class OpCoalescer {
  readonly #maxCopy: number
  #ops: DeltaOp[] = []
  #copyRef = -1
  #copyOffset = 0
  #copyLength = 0

  /** `maxCopy`: a copy is not extended past this many bytes (a new one starts). */
  constructor (maxCopy = Infinity) {
    this.#maxCopy = maxCopy
  }

  copy (fileRef: number, offset: number, length: number): void {
    if (fileRef === this.#copyRef && offset === this.#copyOffset + this.#copyLength && this.#copyLength + length <= this.#maxCopy) {
      this.#copyLength += length
      return
    }
    this.#flushCopy()
    this.#copyRef = fileRef
    this.#copyOffset = offset
    this.#copyLength = length
  }

  literal (data: Uint8Array): void {
    this.#flushCopy()
    this.#ops.push({ type: 'literal', data })
  }

  /** The ops completed so far. */
  take (): DeltaOp[] {
    const ops = this.#ops
    this.#ops = []
    return ops
  }

  /** The ops completed so far and the pending copy. */
  finish (): DeltaOp[] {
    this.#flushCopy()
    return this.take()
  }

  #flushCopy (): void {
    if (this.#copyRef < 0) return
    this.#ops.push({ type: 'copy', fileRef: this.#copyRef, offset: this.#copyOffset, length: this.#copyLength })
    this.#copyRef = -1
  }
}
