import { anchorLengthFor, isAnchored } from './anchor.js'
import { BlockIndexWriter } from './block-index-writer.js'
import { DeltaError } from './errors.js'
import { decodeBlockIndex, encodeBlockIndex } from './index-codec.js'
import { RollKernel } from './roll-kernel.js'
import type { StrongHasher } from './strong-hasher.js'
import { WeakTable } from './weak-table.js'

/** 4 KiB: the page size of SQLite and of most filesystems, so edited pages line up with blocks. */
export const DEFAULT_BLOCK_SIZE = 4096
export const MIN_BLOCK_SIZE = 8
export const MAX_BLOCK_SIZE = 1 << 24
/**
 * At most this many blocks with one weak sum are looked up (the rest stay indexed for the
 * next-block shortcut only): equal blocks are common (zero pages), and every one of them would
 * be walked at every byte whose weak sum matches.
 */
export const MAX_CANDIDATES_PER_WEAK = 64

const MAX_ENTRIES = 2 ** 31 - 2
const TABLE_GROWTH = 1.25
/**
 * A file that adds at least this fraction of the live entries leaves the weak table to be
 * rebuilt by the next lookup rather than inserting into it now (see #blockTable). Amortized: each
 * such rebuild follows growth by this fraction.
 */
const LAZY_TABLE_FRACTION = 0.25

/**
 * The blocks of every file the server holds, for the client to deltify against.
 *
 * Each file is cut into fixed blocks at aligned offsets 0, B, 2B…; its last block may be short.
 * Entry ids are consecutive per file, so "the block after this one" is `id + 1`. Per entry the
 * index keeps the weak sum (4 B) and xxh64 (8 B); the weak table adds 7–14 B, its filter up to
 * 2 MiB in all (and as much again for the roll kernel's copy, once a deltifier used the index).
 * Full blocks go into the weak table; a short last block does not (the deltifier only rolls full-block windows) but
 * can still be matched by the next-block shortcut, so an unchanged file or a concatenation of
 * indexed files costs no literal bytes at all.
 *
 * A file shorter than a block would never match that way, yet small files inside big ones are
 * common (a tar or zip of a source tree). So such a file, if at least `anchorLength` bytes long,
 * also goes into a second table under the weak sum of one `anchorLength`-byte window of it (its
 * anchor, see `anchor.ts`), stored in place of its short block's weak sum, which nothing uses.
 *
 * Removing a file tombstones its table slots and leaves a hole in the entry arrays; holes are
 * compacted away once they outnumber half the live entries.
 *
 * The weak table of full blocks is only needed for lookups, and a client often adds a big file
 * (the one it just sent), drops another (the version it replaced) and saves, with no lookup in
 * between: a 100 MB edit spent ~100 ms inserting, removing and rebuilding 100k entries, of the
 * ~400 ms of its whole sync. So a big change (loading, compacting, adding a file that grows the
 * index by a quarter) marks the table stale, and the next lookup rebuilds it. The anchor table
 * (one entry per small file) is always current: choosing a new file's anchor counts its entries.
 *
 * Methods marked internal are the deltifier's view; entry ids they return are valid until the
 * index is next changed.
 */
export class BlockIndex {
  readonly blockSize: number
  /** Files of at least this many bytes and less than a block are found by a window this long. */
  readonly anchorLength: number
  #weaks: Int32Array = new Int32Array(1024)
  #strongs: BigUint64Array = new BigUint64Array(1024)
  /** Entry ids handed out, including those of removed files not yet compacted. */
  #entryCount = 0
  #liveEntries = 0
  /** File records in entry-id order; a removed file keeps its record (fileRef -1) until compaction. */
  #fileRefs: number[] = []
  #fileFirst: number[] = []
  #fileLength: number[] = []
  /** Where the anchor of a file shorter than a block starts; 0 for other files. */
  #fileAnchor: number[] = []
  #slotOf = new Map<number, number>()
  #table = new WeakTable(0)
  /** Whether #table lags the entries; see #blockTable. */
  #tableStale = false
  /** Anchor weak sum → entry of a file shorter than a block. */
  #anchors = new WeakTable(0)
  /** The deltifiers' rolling loop with its copies of the filters; made on first use. */
  #kernel: RollKernel | undefined

  constructor (blockSize: number = DEFAULT_BLOCK_SIZE) {
    if (!Number.isInteger(blockSize) || blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE) {
      throw new DeltaError('MISUSE', `block size ${blockSize} is not an integer in [${MIN_BLOCK_SIZE}, ${MAX_BLOCK_SIZE}]`)
    }
    this.blockSize = blockSize
    this.anchorLength = anchorLengthFor(blockSize)
  }

  /**
   * Starts indexing the content of server file `fileRef` (a u32 the caller maps to the file).
   * Feed the content with `writer.push(chunk)`; `writer.end()` makes it visible to lookups (and
   * throws if the file got in meanwhile); a writer dropped before `end()` leaves no trace.
   * Memory while writing: 12 bytes per block plus one block.
   */
  addFile (fileRef: number, hasher: StrongHasher): BlockIndexWriter {
    checkFileRef(fileRef)
    if (this.#slotOf.has(fileRef)) throw new DeltaError('MISUSE', `file ${fileRef} is already in the index`)
    return new BlockIndexWriter(this.blockSize, this.anchorLength, hasher, (weaks, strongs, count, length, anchorChoices) => {
      this.#addEntries(fileRef, length, anchorChoices, weaks.subarray(0, count), strongs.subarray(0, count))
    })
  }

  /**
   * Copies file `fromRef` of another index (same block size) into this one as `toRef`: how a
   * client merges block sums the server computed for it into its own index.
   */
  importFile (from: BlockIndex, fromRef: number, toRef: number): void {
    checkFileRef(toRef)
    if (from.blockSize !== this.blockSize) throw new DeltaError('MISUSE', `block size ${from.blockSize} differs from ${this.blockSize}`)
    if (this.#slotOf.has(toRef)) throw new DeltaError('MISUSE', `file ${toRef} is already in the index`)
    const slot = from.#slotOf.get(fromRef)
    if (slot === undefined) throw new DeltaError('MISUSE', `file ${fromRef} is not in the source index`)
    const first = from.#fileFirst[slot]!
    const count = from.#blockCount(slot)
    const weaks = from.#weaks.slice(first, first + count)
    const strongs = from.#strongs.slice(first, first + count)
    // An anchored file's first weak is its anchor's: offered again as the only choice.
    const choices = from.#isAnchored(slot) ? Int32Array.of(from.#fileAnchor[slot]!, weaks[0]!) : new Int32Array(0)
    this.#addEntries(toRef, from.#fileLength[slot]!, choices, weaks, strongs)
  }

  /**
   * Forgets a file; no-op when absent. Deltas made before may still name it: the server must
   * keep the file until they are applied.
   */
  removeFile (fileRef: number): void {
    const slot = this.#slotOf.get(fileRef)
    if (slot === undefined) return
    const first = this.#fileFirst[slot]!
    const count = this.#blockCount(slot)
    const full = Math.floor(this.#fileLength[slot]! / this.blockSize)
    if (!this.#tableStale) for (let id = first; id < first + full; id++) this.#table.remove(this.#weaks[id]!, id)
    if (this.#isAnchored(slot)) this.#anchors.remove(this.#weaks[first]!, first)
    this.#slotOf.delete(fileRef)
    this.#fileRefs[slot] = -1
    this.#liveEntries -= count
    if (this.#entryCount - this.#liveEntries > this.#liveEntries / 2) this.#compact()
  }

  hasFile (fileRef: number): boolean {
    return this.#slotOf.has(fileRef)
  }

  /** The indexed byte length of a file, or undefined when absent. */
  fileLength (fileRef: number): number | undefined {
    const slot = this.#slotOf.get(fileRef)
    return slot === undefined ? undefined : this.#fileLength[slot]
  }

  fileRefs (): Iterable<number> {
    return this.#slotOf.keys()
  }

  /** Indexed blocks, short last blocks included. */
  get size (): number {
    return this.#liveEntries
  }

  /** Compact bytes (about 12 per block) from which `deserialize` rebuilds an equal index. */
  serialize (): Uint8Array {
    const files: { fileRef: number, length: number, anchorOffset: number }[] = []
    const weaks = new Int32Array(this.#liveEntries)
    const strongs = new BigUint64Array(this.#liveEntries)
    let n = 0
    for (let slot = 0; slot < this.#fileRefs.length; slot++) {
      const fileRef = this.#fileRefs[slot]!
      if (fileRef < 0) continue
      const first = this.#fileFirst[slot]!
      const count = this.#blockCount(slot)
      files.push({ fileRef, length: this.#fileLength[slot]!, anchorOffset: this.#fileAnchor[slot]! })
      weaks.set(this.#weaks.subarray(first, first + count), n)
      strongs.set(this.#strongs.subarray(first, first + count), n)
      n += count
    }
    return encodeBlockIndex({ blockSize: this.blockSize, files, weaks, strongs })
  }

  /** Throws a `DeltaError` with code BAD_INDEX on anything `serialize` could not have produced. */
  static deserialize (buf: Uint8Array): BlockIndex {
    const parts = decodeBlockIndex(buf, MIN_BLOCK_SIZE, MAX_BLOCK_SIZE)
    const index = new BlockIndex(parts.blockSize)
    index.#weaks = parts.weaks
    index.#strongs = parts.strongs
    let first = 0
    for (const { fileRef, length, anchorOffset } of parts.files) {
      index.#slotOf.set(fileRef, index.#fileRefs.length)
      index.#fileRefs.push(fileRef)
      index.#fileFirst.push(first)
      index.#fileLength.push(length)
      index.#fileAnchor.push(anchorOffset)
      first += Math.ceil(length / parts.blockSize)
    }
    index.#entryCount = index.#liveEntries = first
    index.#rebuildAnchors()
    index.#tableStale = true
    return index
  }

  /** @internal The weak table's filter bitmap, for the deltifier's inlined test. */
  get filter (): Int32Array {
    return this.#blockTable().filter
  }

  /** @internal */
  get filterShift (): number {
    return this.#blockTable().filterShift
  }

  /** @internal The roll kernel, its copies of the filters brought up to date. */
  rollKernel (): RollKernel {
    this.#kernel ??= new RollKernel(this.blockSize, this.anchorLength)
    this.#kernel.sync(this.#blockTable(), this.#anchors)
    return this.#kernel
  }

  /** @internal Whether any file is indexed by its anchor. */
  get hasAnchors (): boolean {
    return this.#anchors.live > 0
  }

  /** @internal The anchor table's filter bitmap. */
  get anchorFilter (): Int32Array {
    return this.#anchors.filter
  }

  /** @internal */
  get anchorFilterShift (): number {
    return this.#anchors.filterShift
  }

  /**
   * @internal A file shorter than a block whose anchor's weak sum is `weak` and which lies whole
   * in `data[from, end)` with its anchor at `at`: its entry id, or -1. The file starts at
   * `at - anchorOffset(id)`.
   */
  findAnchored (weak: number, data: Uint8Array, at: number, from: number, end: number, hasher: StrongHasher): number {
    const anchors = this.#anchors
    for (let s = anchors.firstSlot(weak); ; s = anchors.nextSlot(s)) {
      const id = anchors.entryAt(s)
      if (id === -1) return -1
      if (id < 0 || this.#weaks[id] !== weak) continue
      const slot = this.#slotOfEntry(id)
      const start = at - this.#fileAnchor[slot]!
      const length = this.#fileLength[slot]!
      if (start < from || start + length > end) continue
      if (hasher.strong64(data, start, start + length) === this.#strongs[id]) return id
    }
  }

  /** @internal Where the anchor starts in the file that holds entry `id`. */
  anchorOffset (id: number): number {
    return this.#fileAnchor[this.#slotOfEntry(id)]!
  }

  /**
   * @internal A full block whose weak sum is `weak` and whose xxh64 equals that of
   * `data[start, start + blockSize)`: its entry id, or -1. The strong hash is computed at most
   * once, and only when some entry has the same weak sum.
   */
  findBlock (weak: number, data: Uint8Array, start: number, hasher: StrongHasher): number {
    const table = this.#blockTable()
    const weaks = this.#weaks
    let strong = -1n
    for (let s = table.firstSlot(weak); ; s = table.nextSlot(s)) {
      const id = table.entryAt(s)
      if (id === -1) return -1
      if (id >= 0 && weaks[id] === weak) {
        if (strong < 0n) strong = hasher.strong64(data, start, start + this.blockSize)
        if (this.#strongs[id] === strong) return id
      }
    }
  }

  /** @internal Entry id of block `block` of a file, or -1 when there is no such block. */
  blockEntry (fileRef: number, block: number): number {
    const slot = this.#slotOf.get(fileRef)
    if (slot === undefined || block >= this.#blockCount(slot)) return -1
    return this.#fileFirst[slot]! + block
  }

  /** @internal */
  entryStrong (id: number): bigint {
    return this.#strongs[id]!
  }

  /** @internal */
  entryWeak (id: number): number {
    return this.#weaks[id]!
  }

  /** @internal The file that holds an entry. */
  entryFileRef (id: number): number {
    return this.#fileRefs[this.#slotOfEntry(id)]!
  }

  /** @internal The entry's block number within its file. */
  entryBlock (id: number): number {
    return id - this.#fileFirst[this.#slotOfEntry(id)]!
  }

  #blockCount (slot: number): number {
    return Math.ceil(this.#fileLength[slot]! / this.blockSize)
  }

  #isAnchored (slot: number): boolean {
    return isAnchored(this.#fileLength[slot]!, this.blockSize)
  }

  /** Binary search: the last file record whose first entry is ≤ id. */
  #slotOfEntry (id: number): number {
    let lo = 0
    let hi = this.#fileFirst.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (this.#fileFirst[mid]! <= id) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  #addEntries (fileRef: number, length: number, anchorChoices: Int32Array, weaks: Int32Array, strongs: BigUint64Array): void {
    if (this.#slotOf.has(fileRef)) throw new DeltaError('MISUSE', `file ${fileRef} was added to the index while being written`)
    const count = weaks.length
    if (this.#entryCount + count > MAX_ENTRIES) throw new DeltaError('MISUSE', 'block index is full')
    this.#reserve(this.#entryCount + count)
    const first = this.#entryCount
    this.#weaks.set(weaks, first)
    this.#strongs.set(strongs, first)
    let anchorOffset = 0
    if (anchorChoices.length > 0) {
      // The least used of the offered windows; the first (smallest mix) among equals.
      let best = Infinity
      for (let i = 0; i < anchorChoices.length && best > 0; i += 2) {
        const used = this.#anchors.count(anchorChoices[i + 1]!, this.#weaks, MAX_CANDIDATES_PER_WEAK)
        if (used < best) {
          best = used
          anchorOffset = anchorChoices[i]!
          this.#weaks[first] = anchorChoices[i + 1]!
        }
      }
    }
    this.#entryCount += count
    this.#liveEntries += count
    this.#slotOf.set(fileRef, this.#fileRefs.length)
    this.#fileRefs.push(fileRef)
    this.#fileFirst.push(first)
    this.#fileLength.push(length)
    this.#fileAnchor.push(anchorOffset)
    if (this.#isAnchored(this.#fileRefs.length - 1)) {
      if (this.#anchors.full(1)) this.#rebuildAnchors()
      else this.#insert(this.#anchors, first)
    }
    const full = Math.floor(length / this.blockSize)
    if (this.#tableStale) return
    if (full >= this.#liveEntries * LAZY_TABLE_FRACTION || this.#table.full(full)) {
      this.#tableStale = true
      return
    }
    for (let id = first; id < first + full; id++) this.#insert(this.#table, id)
  }

  #insert (table: WeakTable, id: number): void {
    table.insert(this.#weaks[id]!, id, this.#weaks, MAX_CANDIDATES_PER_WEAK)
  }

  #reserve (entries: number): void {
    if (entries <= this.#weaks.length) return
    const capacity = Math.max(entries, this.#weaks.length * 2)
    const weaks = new Int32Array(capacity)
    weaks.set(this.#weaks.subarray(0, this.#entryCount))
    const strongs = new BigUint64Array(capacity)
    strongs.set(this.#strongs.subarray(0, this.#entryCount))
    this.#weaks = weaks
    this.#strongs = strongs
  }

  /** The weak table of full blocks, rebuilt first if stale. */
  #blockTable (): WeakTable {
    if (this.#tableStale) {
      this.#rebuildBlockTable()
      this.#tableStale = false
    }
    return this.#table
  }

  /**
   * A fresh table for the live entries, with room for a quarter more before the next rebuild (so
   * rebuilding costs O(1) per added entry), filled in entry order.
   */
  #rebuildBlockTable (): void {
    let full = 0
    for (let slot = 0; slot < this.#fileRefs.length; slot++) {
      if (this.#fileRefs[slot]! >= 0) full += Math.floor(this.#fileLength[slot]! / this.blockSize)
    }
    this.#table = new WeakTable(Math.ceil(full * TABLE_GROWTH))
    for (let slot = 0; slot < this.#fileRefs.length; slot++) {
      if (this.#fileRefs[slot]! < 0) continue
      const first = this.#fileFirst[slot]!
      this.#table.insertRange(this.#weaks, first, first + Math.floor(this.#fileLength[slot]! / this.blockSize), MAX_CANDIDATES_PER_WEAK)
    }
  }

  #rebuildAnchors (): void {
    let anchored = 0
    for (let slot = 0; slot < this.#fileRefs.length; slot++) if (this.#fileRefs[slot]! >= 0 && this.#isAnchored(slot)) anchored++
    this.#anchors = new WeakTable(Math.ceil(anchored * TABLE_GROWTH))
    for (let slot = 0; slot < this.#fileRefs.length; slot++) {
      if (this.#fileRefs[slot]! >= 0 && this.#isAnchored(slot)) this.#insert(this.#anchors, this.#fileFirst[slot]!)
    }
  }

  /** Moves live entries over the holes of removed files; ids change, so the table is rebuilt. */
  #compact (): void {
    let next = 0
    const refs: number[] = []
    const firsts: number[] = []
    const lengths: number[] = []
    const anchorOffsets: number[] = []
    this.#slotOf.clear()
    for (let slot = 0; slot < this.#fileRefs.length; slot++) {
      const fileRef = this.#fileRefs[slot]!
      if (fileRef < 0) continue
      const first = this.#fileFirst[slot]!
      const count = this.#blockCount(slot)
      this.#weaks.copyWithin(next, first, first + count)
      this.#strongs.copyWithin(next, first, first + count)
      this.#slotOf.set(fileRef, refs.length)
      refs.push(fileRef)
      firsts.push(next)
      lengths.push(this.#fileLength[slot]!)
      anchorOffsets.push(this.#fileAnchor[slot]!)
      next += count
    }
    this.#fileRefs = refs
    this.#fileFirst = firsts
    this.#fileLength = lengths
    this.#fileAnchor = anchorOffsets
    this.#entryCount = next
    this.#rebuildAnchors()
    this.#tableStale = true
  }
}

function checkFileRef (fileRef: number): void {
  if (!Number.isInteger(fileRef) || fileRef < 0 || fileRef > 0xffffffff) {
    throw new DeltaError('MISUSE', `fileRef ${fileRef} is not a u32`)
  }
}
