import type { BlockIndex } from './block-index.js'
import { type DeltaOp, OpCoalescer } from './delta-op.js'
import { DeltaError } from './errors.js'
import type { StrongHasher } from './strong-hasher.js'
import { passes, RollKernel, rollOne, weakOf } from './roll-kernel.js'
import { weakSum } from './weak-sum.js'

/** Longest literal op; a longer unmatched run is sent as several. */
export const DEFAULT_MAX_LITERAL = 256 * 1024

export interface DeltifierOptions {
  /** Longest literal op in bytes (default 256 KiB). Also bounds the deltifier's memory. */
  maxLiteral?: number
  /**
   * Look for indexed files shorter than a block (default true): what makes a tar or zip of
   * small server files cost only its headers. Rolling the second window costs about a third of
   * the scan speed over new data (~480 → ~290 MB/s at 4 KiB blocks, ~360 → ~260 at 1 KiB), only
   * while the index holds such files, and not right after edits inside a matched file.
   */
  anchors?: boolean
  /**
   * Longest copy op in bytes (default: unbounded, an unchanged file is one op). A caller that
   * keeps the target's bytes until ops cover them (IndexingDeltifier) bounds its memory with it:
   * a copy still growing is not handed out.
   */
  maxCopy?: number
  /**
   * An indexed file the target likely starts like (its previous version): its first block is
   * the guess for the target's first window. An unchanged start then matches block by block
   * without the weak table, which is built at the first miss only (a 100 MB index: ~30 ms in a
   * fresh process). A wrong guess costs one xxh64 of a block (two, with the overwrite guess).
   */
  firstGuess?: number
}

/**
 * Turns a new file, pushed in chunks, into ops against every block of a `BlockIndex`.
 *
 * The search, at the start of the target and after every miss, is rsync's: roll the weak sum of
 * a block-sized window one byte at a time, and confirm a weak hit with xxh64. What makes it cheap
 * on mostly-unchanged data are two guesses tried before rolling, each one xxh64 of a block:
 * - after a match with block b of file f, the next window is tried against block b+1 of f (so an
 *   unchanged stretch costs one hash per block, no rolling);
 * - when that fails and the window matches nothing else, block b+2 is tried one block further
 *   on: an overwrite inside block b+1 then costs one block of literal and no rolling.
 * A file's short last block is reachable through the first guess, so an unchanged file, or a
 * concatenation of indexed files, needs no literal at all. Files shorter than a block are found
 * by their anchor (see `anchor.ts`), except in the target's last block.
 *
 * Memory: one buffer of at most 2·(maxLiteral + 2·blockSize) bytes, whatever the file size
 * (and the index's roll kernel, shared by its deltifiers, mirrors up to twice that).
 * Every pushed byte is copied into it once, which keeps literal ops independent of the caller's
 * chunks (they may be reused after `push` returns).
 *
 * The index may change between calls (files added or removed): the deltifier keeps no entry ids
 * across calls, only "block b of file f".
 */
export class Deltifier {
  readonly #index: BlockIndex
  readonly #hasher: StrongHasher
  readonly #blockSize: number
  readonly #maxLiteral: number
  readonly #anchors: boolean
  readonly #capacity: number
  readonly #ops: OpCoalescer
  #buf: Uint8Array
  /** Bytes of target before #buf[0] (dropped by #makeRoom): where #buf sits in the target. */
  #base = 0
  /** Who we are to the roll kernel, which mirrors #buf. */
  readonly #kernelOwner = RollKernel.newOwner()
  /** Bytes of target held in #buf. */
  #end = 0
  /** Start of the window being matched. */
  #pos = 0
  /** Start of the bytes no op covers yet; ≤ #pos. */
  #literalStart = 0
  /** Whether #sums holds the weak sum of the block window at #pos. */
  #rolling = false
  /** Whether #sums also holds that of the anchor window at #pos. */
  #rollingAnchor = false
  /**
   * Before this position anchors are not looked for: rolling there follows an edit inside a
   * matched file (its next block did not match), where the rest of that file, not a small file,
   * is what comes back. Anchors add half to the cost of rolling; this keeps them off the rolling
   * that most edits cause (at 1 % edits, ~450 → ~520 MB/s at 4 KiB blocks). Cost: a small file
   * placed within two blocks after an edit is sent as literal.
   */
  #plainUntil = 0
  /** The rolling state, as `roll-kernel` takes it. */
  readonly #sums = new Int32Array(4)
  /** Block #expectBlock of #expectRef is the guess for the window at #pos; -1: no guess. */
  #expectRef = -1
  #expectBlock = 0
  /** The guess is the caller's `firstGuess`, not the block after a match. */
  #guessIsFirst = false
  #ended = false

  constructor (index: BlockIndex, hasher: StrongHasher, opts: DeltifierOptions = {}) {
    const maxLiteral = opts.maxLiteral ?? DEFAULT_MAX_LITERAL
    if (!Number.isInteger(maxLiteral) || maxLiteral < 1) {
      throw new DeltaError('MISUSE', `maxLiteral ${maxLiteral} is not a positive integer`)
    }
    this.#index = index
    this.#hasher = hasher
    this.#blockSize = index.blockSize
    this.#maxLiteral = maxLiteral
    this.#anchors = opts.anchors ?? true
    const maxCopy = opts.maxCopy ?? Infinity
    if (!(maxCopy >= index.blockSize)) throw new DeltaError('MISUSE', `maxCopy ${maxCopy} is below the block size`)
    this.#ops = new OpCoalescer(maxCopy)
    // What the scan may hold back (a pending literal and two blocks of lookahead) fills at most half.
    this.#capacity = 2 * (maxLiteral + 2 * index.blockSize)
    this.#buf = new Uint8Array(Math.min(this.#capacity, 16 * index.blockSize))
    if (opts.firstGuess !== undefined && index.hasFile(opts.firstGuess)) {
      this.#expectRef = opts.firstGuess
      this.#guessIsFirst = true
    }
  }

  /** Feeds the next bytes of the target; returns the ops completed so far (possibly none). */
  push (chunk: Uint8Array): DeltaOp[] {
    if (this.#ended) throw new DeltaError('MISUSE', 'push after end')
    let at = 0
    while (at < chunk.length) {
      if (this.#end === this.#buf.length) this.#makeRoom()
      const n = Math.min(chunk.length - at, this.#buf.length - this.#end)
      this.#buf.set(chunk.subarray(at, at + n), this.#end)
      this.#end += n
      at += n
      this.#scan(false)
    }
    return this.#ops.take()
  }

  /** Ends the target; returns the remaining ops. */
  end (): DeltaOp[] {
    if (this.#ended) throw new DeltaError('MISUSE', 'end called twice')
    this.#ended = true
    this.#scan(true)
    this.#flushLiteral(this.#end)
    this.#buf = new Uint8Array(0)
    return this.#ops.finish()
  }

  /** Runs the matcher over the buffered bytes; with `final`, without waiting for lookahead. */
  #scan (final: boolean): void {
    const B = this.#blockSize
    for (;;) {
      if (!this.#rolling) {
        const avail = this.#end - this.#pos
        if (!final && avail < 2 * B) return
        const skipRef = this.#expectRef
        const skipBlock = this.#expectBlock + 1
        if (skipRef >= 0) {
          if (this.#tryBlock(skipRef, this.#expectBlock, this.#pos)) continue
          // Missing the block after a match is an edit in that file; missing the first guess is not.
          if (!this.#guessIsFirst && this.#index.blockEntry(skipRef, this.#expectBlock) >= 0) this.#plainUntil = this.#pos + 2 * B
        }
        this.#guessIsFirst = false
        this.#expectRef = -1
        if (avail < B) return
        const weak = weakSum(this.#buf, this.#pos, this.#pos + B)
        this.#sums[0] = weak & 0xffff
        this.#sums[1] = weak >>> 16
        this.#rolling = true
        this.#rollingAnchor = false
        if (skipRef >= 0) {
          // The window may be a block of another file; only if not, guess an overwrite.
          const found = this.#index.findBlock(weak | 0, this.#buf, this.#pos, this.#hasher)
          if (found >= 0) {
            this.#matched(this.#index.entryFileRef(found), this.#index.entryBlock(found), B, this.#pos)
            continue
          }
          if (this.#tryBlock(skipRef, skipBlock, this.#pos + B)) continue
        }
      }
      if (!this.#roll()) return
    }
  }

  /** Whether block `block` of file `fileRef` is at `at`; if so, emits it. */
  #tryBlock (fileRef: number, block: number, at: number): boolean {
    const id = this.#index.blockEntry(fileRef, block)
    if (id < 0) return false
    const length = Math.min(this.#blockSize, this.#index.fileLength(fileRef)! - block * this.#blockSize)
    if (at + length > this.#end) return false
    if (this.#hasher.strong64(this.#buf, at, at + length) !== this.#index.entryStrong(id)) return false
    this.#matched(fileRef, block, length, at)
    return true
  }

  /**
   * Rolls the window from #pos until a block or an anchored file matches (true) or the buffered
   * bytes run out (false, with the rolling state saved). Flushes a literal each time one reaches
   * maxLiteral.
   */
  #roll (): boolean {
    const index = this.#index
    const kernel = index.rollKernel()
    const buf = this.#buf
    const sums = this.#sums
    const B = this.#blockSize
    const A = index.anchorLength
    const filter = index.filter
    const filterShift = index.filterShift
    const anchorsWanted = this.#anchors && index.hasAnchors
    const anchorFilter = index.anchorFilter
    const anchorFilterShift = index.anchorFilterShift
    const last = this.#end - B
    let p = this.#pos
    for (;;) {
      const anchors = anchorsWanted && p >= this.#plainUntil
      if (anchors && !this.#rollingAnchor) {
        const weak = weakSum(buf, p, p + A)
        sums[2] = weak & 0xffff
        sums[3] = weak >>> 16
      }
      this.#rollingAnchor = anchors
      const literalFull = this.#literalStart + this.#maxLiteral
      // Stop where the literal is full, and where anchors start being looked for.
      const stop = Math.min(last, literalFull, anchorsWanted && !anchors ? this.#plainUntil : last)
      p = kernel.roll(this.#kernelOwner, buf, this.#base, this.#end, p, stop, sums, anchors)
      const weak = weakOf(sums, 0)
      if (passes(weak, filter, filterShift)) {
        const found = index.findBlock(weak, buf, p, this.#hasher)
        if (found >= 0) {
          this.#matched(index.entryFileRef(found), index.entryBlock(found), B, p)
          return true
        }
      }
      if (anchors && passes(weakOf(sums, 2), anchorFilter, anchorFilterShift)) {
        // The file starts before its anchor, in bytes not yet sent: the pending literal shrinks.
        const found = index.findAnchored(weakOf(sums, 2), buf, p, this.#literalStart, this.#end, this.#hasher)
        if (found >= 0) {
          const fileRef = index.entryFileRef(found)
          this.#matched(fileRef, 0, index.fileLength(fileRef)!, p - index.anchorOffset(found))
          return true
        }
      }
      if (p >= last) {
        this.#pos = p
        return false
      }
      if (p >= literalFull) this.#flushLiteral(p)
      if (p >= stop) continue // the window at p is looked at again, with the next stop
      rollOne(buf, p, B, A, sums, anchors)
      p++
    }
  }

  /** Emits the literal up to `at` and a copy of `length` bytes of the block found there. */
  #matched (fileRef: number, block: number, length: number, at: number): void {
    this.#flushLiteral(at)
    this.#ops.copy(fileRef, block * this.#blockSize, length)
    this.#pos = this.#literalStart = at + length
    this.#rolling = false
    this.#expectRef = length === this.#blockSize ? fileRef : -1
    this.#expectBlock = block + 1
    this.#guessIsFirst = false
  }

  #flushLiteral (to: number): void {
    for (let from = this.#literalStart; from < to; from += this.#maxLiteral) {
      this.#ops.literal(this.#buf.slice(from, Math.min(to, from + this.#maxLiteral)))
    }
    this.#literalStart = to
  }

  /** Drops the bytes ops already cover; grows the buffer (up to #capacity) when that frees too little. */
  #makeRoom (): void {
    const drop = this.#literalStart
    if (drop > 0) {
      this.#buf.copyWithin(0, drop, this.#end)
      this.#base += drop
      this.#end -= drop
      this.#pos -= drop
      this.#literalStart = 0
    }
    if (this.#end * 2 > this.#buf.length && this.#buf.length < this.#capacity) {
      const bigger = new Uint8Array(Math.min(this.#capacity, this.#buf.length * 2))
      bigger.set(this.#buf.subarray(0, this.#end))
      this.#buf = bigger
    }
    if (this.#end === this.#buf.length) throw new Error('deltifier buffer full: invariant broken')
  }
}

