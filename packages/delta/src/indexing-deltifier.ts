import type { BlockIndex } from './block-index.js'
import type { BlockIndexWriter } from './block-index-writer.js'
import { ByteQueue } from './byte-queue.js'
import type { DeltaOp } from './delta-op.js'
import type { Deltifier } from './deltifier.js'

/**
 * Deltifies a file and indexes it in the same pass: the sender's index must hold every file it
 * sends (the next version is deltified against it), and reading the file twice, or summing every
 * block of it, cost as much as the delta itself.
 *
 * A block of the file that a copy op takes whole from a full, aligned block of an indexed file
 * has that block's sums: they are taken from the index instead of computed. They are right: the
 * deltifier emitted the copy because the bytes hashed to that block's xxh64. So an edit in place,
 * the common change of a big file, costs the writer only its changed blocks. After an insertion
 * the copies are no longer aligned with the file's own blocks, and those blocks are summed from
 * their bytes, as a plain writer would.
 *
 * Pushed bytes are held (copied, in reused segments) until the ops cover them: the caller may
 * reuse its chunk once `push` returns. A copy op is handed out only once it stops growing, so give
 * the deltifier a `maxCopy` (see `INDEXING_MAX_COPY`): without one, an unchanged stretch of a
 * huge file would be held whole.
 */
/** The `maxCopy` to give the deltifier: what is held stays below this plus the deltifier's lag. */
export const INDEXING_MAX_COPY = 8 * 1024 * 1024

export class IndexingDeltifier {
  readonly #deltifier: Deltifier
  readonly #index: BlockIndex
  readonly #writer: BlockIndexWriter
  /** Pushed bytes no op covers yet. */
  readonly #held = new ByteQueue()

  constructor (deltifier: Deltifier, index: BlockIndex, writer: BlockIndexWriter) {
    this.#deltifier = deltifier
    this.#index = index
    this.#writer = writer
  }

  /** Bytes pushed and not yet covered by ops (held). */
  get held (): number { return this.#held.length }

  push (chunk: Uint8Array): DeltaOp[] {
    this.#held.push(chunk)
    return this.#index_(this.#deltifier.push(chunk))
  }

  /** The last ops; the writer then holds the whole file (commit it with `writer.end()`). */
  end (): DeltaOp[] {
    return this.#index_(this.#deltifier.end())
  }

  #index_ (ops: DeltaOp[]): DeltaOp[] {
    for (const op of ops) {
      if (op.type === 'literal') this.#bytes(op.data.length)
      else this.#copy(op.fileRef, op.offset, op.length)
    }
    return ops
  }

  /** Indexes the next `length` bytes, a copy of `[offset, offset + length)` of file `fileRef`. */
  #copy (fileRef: number, offset: number, length: number): void {
    const B = this.#index.blockSize
    const writer = this.#writer
    // Copies start at a block of the source; they line up with our blocks only where we are at a block start.
    if ((writer.length - offset) % B !== 0 || offset % B !== 0) {
      this.#bytes(length)
      return
    }
    const fileLength = this.#index.fileLength(fileRef) ?? 0
    let done = 0
    while (length - done >= B) {
      const at = offset + done
      const id = at + B <= fileLength ? this.#index.blockEntry(fileRef, at / B) : -1
      if (id < 0) break
      writer.pushBlock(this.#index.entryWeak(id), this.#index.entryStrong(id))
      this.#drop(B)
      done += B
    }
    this.#bytes(length - done)
  }

  /** Feeds the writer the next `length` held bytes. */
  #bytes (length: number): void {
    this.#held.shift(length, (piece) => { this.#writer.push(piece) })
  }

  /** Drops the next `length` held bytes (their sums are known). */
  #drop (length: number): void {
    this.#held.shift(length)
  }
}
