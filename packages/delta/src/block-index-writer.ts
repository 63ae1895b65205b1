import { anchorChoices, isAnchored } from './anchor.js'
import { blockWeakSums } from './block-sums-kernel.js'
import { DeltaError } from './errors.js'
import type { StrongHasher } from './strong-hasher.js'
import { weakSum } from './weak-sum.js'

/**
 * Receives a finished file's block sums: `count` entries, `length` bytes of content, and the
 * candidates for its anchor (see `anchorChoices`; empty when the file gets none).
 */
export type CommitBlocks = (weaks: Int32Array, strongs: BigUint64Array, count: number, length: number, anchorChoices: Int32Array) => void

/**
 * Cuts one file's content, fed in chunks of any size, into blocks and sums them. Whole blocks
 * inside a chunk are summed in place; only a block that straddles chunks is copied. The file
 * reaches the index at `end()`, all at once, so a half-written file is never matched.
 */
export class BlockIndexWriter {
  readonly #blockSize: number
  readonly #anchorLength: number
  readonly #hasher: StrongHasher
  readonly #commit: CommitBlocks
  readonly #partial: Uint8Array
  #partialLength = 0
  #weaks = new Int32Array(64)
  #strongs = new BigUint64Array(64)
  #count = 0
  #length = 0
  #ended = false

  constructor (blockSize: number, anchorLength: number, hasher: StrongHasher, commit: CommitBlocks) {
    this.#blockSize = blockSize
    this.#anchorLength = anchorLength
    this.#hasher = hasher
    this.#commit = commit
    this.#partial = new Uint8Array(blockSize)
  }

  push (chunk: Uint8Array): void {
    if (this.#ended) throw new DeltaError('MISUSE', 'push after end')
    const B = this.#blockSize
    this.#length += chunk.length
    let i = 0
    if (this.#partialLength > 0) {
      i = Math.min(B - this.#partialLength, chunk.length)
      this.#partial.set(chunk.subarray(0, i), this.#partialLength)
      this.#partialLength += i
      if (this.#partialLength < B) return
      this.#addBlock(this.#partial, 0, B)
      this.#partialLength = 0
    }
    // Whole blocks: weak sums all at once in the SIMD kernel (4× the JS loop), then xxh64 each.
    const whole = Math.floor((chunk.length - i) / B)
    if (whole > 0) {
      this.#grow(whole)
      if (blockWeakSums(chunk, i, whole, B, this.#weaks, this.#count) === whole) {
        for (let k = 0; k < whole; k++, i += B) this.#strongs[this.#count++] = this.#hasher.strong64(chunk, i, i + B)
      }
    }
    for (; i + B <= chunk.length; i += B) this.#addBlock(chunk, i, i + B)
    if (i < chunk.length) {
      this.#partial.set(chunk.subarray(i))
      this.#partialLength = chunk.length - i
    }
  }

  /** Bytes pushed so far. */
  get length (): number {
    return this.#length
  }

  /**
   * Adds the next whole block by sums already known (it is a copy of an indexed block): no
   * hashing. Only at a block boundary.
   */
  pushBlock (weak: number, strong: bigint): void {
    if (this.#ended) throw new DeltaError('MISUSE', 'push after end')
    if (this.#partialLength > 0) throw new DeltaError('MISUSE', 'pushBlock inside a block')
    this.#grow()
    this.#weaks[this.#count] = weak
    this.#strongs[this.#count] = strong
    this.#count++
    this.#length += this.#blockSize
  }

  /** Indexes the short last block, if any, and adds the file to the index. */
  end (): void {
    if (this.#ended) throw new DeltaError('MISUSE', 'end called twice')
    this.#ended = true
    if (this.#partialLength > 0) this.#addBlock(this.#partial, 0, this.#partialLength)
    const choices = isAnchored(this.#length, this.#blockSize)
      ? anchorChoices(this.#partial, this.#length, this.#anchorLength)
      : new Int32Array(0)
    this.#commit(this.#weaks, this.#strongs, this.#count, this.#length, choices)
  }

  /** Room for `more` entries. */
  #grow (more = 1): void {
    if (this.#count + more <= this.#weaks.length) return
    const weaks = new Int32Array(Math.max(this.#count * 2, this.#count + more))
    weaks.set(this.#weaks)
    this.#weaks = weaks
    const strongs = new BigUint64Array(weaks.length)
    strongs.set(this.#strongs)
    this.#strongs = strongs
  }

  #addBlock (data: Uint8Array, start: number, end: number): void {
    this.#grow()
    this.#weaks[this.#count] = weakSum(data, start, end)
    this.#strongs[this.#count] = this.#hasher.strong64(data, start, end)
    this.#count++
  }
}
