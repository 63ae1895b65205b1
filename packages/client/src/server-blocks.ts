/**
 * The client's copy of the server's block index: fixed blocks of every piece of content the
 * server holds, keyed by content SHA-256, so a new or changed file is deltified against all of
 * them with no signature traffic. The client can build it because it pushed that content (it
 * indexes each file while uploading it) or holds the same content locally; it persists with the
 * rest of the client's state. Content the server no longer holds is pruned before each batch,
 * and a stale entry that slips through costs a fallback, never a wrong file: the server checks
 * every rebuilt file's SHA-256.
 */
import { createHash } from 'node:crypto'
import { closeSync, openSync, readSync } from 'node:fs'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { BlockIndex, type BlockIndexWriter, createStrongHasher, type DeltaOp, Deltifier, INDEXING_MAX_COPY, IndexingDeltifier, type StrongHasher } from '@fsyncd/delta'
import { type Manifest, SIG_BLOCK_SIZE } from '@fsyncd/protocol'
import { Packr } from 'msgpackr'

const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' })
const FORMAT_VERSION = 1
const READ_CHUNK = 1024 * 1024
/**
 * Literal runs up to 1 MiB (the engine's default is 256 KiB): each is compressed alone, and zstd
 * on the bench's 20 MB of text made 5.28 MB in 1 MiB pieces, 5.40 MB in 256 KiB ones.
 */
const MAX_LITERAL = 1024 * 1024

/**
 * 1 KiB blocks. An edit costs about its bytes rounded up to two blocks, an insertion one block:
 * with 4 KiB blocks 100 bytes inserted cost ~4.3 KB and twenty scattered 1 KiB edits ~160 KB
 * of incompressible data; with 1 KiB, ~1.3 KB and ~40 KB. The price is the index: ~12 bytes per
 * KiB of server content (120 MB for 10 GB), held by the client.
 */
export const BLOCK_SIZE = SIG_BLOCK_SIZE

/** Indexing of one file in progress: fed while the file is read, committed when complete. */
export interface PendingContent {
  push: (chunk: Uint8Array) => void
  commit: () => void
}

/**
 * One file on its way to the server: its chunks become ops (copies of blocks the server holds,
 * and literals), and the file joins the cache in the same pass (see IndexingDeltifier), to be
 * matched once `commit()`ed. A chunk given to `push` may be reused once it returns unless
 * `keepsChunks`; one given to `prefix` always may.
 */
export interface Upload {
  /** Bytes the server holds already (a resumed upload's prefix): indexed (copied), not sent. Before `push`. */
  prefix: (chunk: Uint8Array) => void
  push: (chunk: Uint8Array) => DeltaOp[]
  /** Whether `push` keeps the chunk (it goes out as a literal): else the caller may reuse it. */
  keepsChunks: boolean
  end: () => DeltaOp[]
  /** Adds what was pushed to the cache as content `hash` (which may be learnt only at the end). */
  commit: (hash: Buffer) => void
}

export class ServerBlocks {
  readonly #hasher: StrongHasher
  #index: BlockIndex
  readonly #refOf = new Map<string, number>()
  readonly #hashOf = new Map<number, Buffer>()
  #nextRef = 1
  #version = 0

  private constructor (hasher: StrongHasher, index: BlockIndex) {
    this.#hasher = hasher
    this.#index = index
  }

  static async create (): Promise<ServerBlocks> {
    return new ServerBlocks(await createStrongHasher(), new BlockIndex(BLOCK_SIZE))
  }

  get blockSize (): number {
    return this.#index.blockSize
  }

  /** Counts changes (contents added or dropped): equal versions mean nothing to save. */
  get version (): number {
    return this.#version
  }

  /** Number of contents indexed. */
  get contents (): number {
    return this.#refOf.size
  }

  has (hash: Buffer): boolean {
    return this.#refOf.has(hash.toString('hex'))
  }

  hashOf (fileRef: number): Buffer | undefined {
    return this.#hashOf.get(fileRef)
  }

  /**
   * Starts indexing content `hash`. Nothing is matched against it until `commit()`, so a file
   * never refers to its own unfinished upload.
   */
  begin (hash: Buffer): PendingContent | undefined {
    if (this.has(hash)) return undefined
    const pending = this.#begin()
    return { push: (chunk) => pending.writer.push(chunk), commit: () => pending.commit(hash) }
  }

  #begin (): { writer: BlockIndexWriter, commit: (hash: Buffer) => void } {
    const ref = this.#nextRef++
    const writer = this.#index.addFile(ref, this.#hasher)
    return {
      writer,
      commit: (hash) => {
        if (this.has(hash)) return
        writer.end()
        this.#refOf.set(hash.toString('hex'), ref)
        this.#hashOf.set(ref, hash)
        this.#version++
      },
    }
  }

  /**
   * Indexes a local file that holds content `hash`, checked by its SHA-256 as it is read.
   * False when it was not indexed (gone, unreadable, or not that content any more).
   */
  async indexFile (abs: string, hash: Buffer): Promise<boolean> {
    let fd: number
    try { fd = openSync(abs, 'r') } catch { return false }
    try {
      const pending = this.begin(hash)
      if (pending === undefined) return true
      const h = createHash('sha256')
      for (let n = 1; ; n++) {
        const chunk = Buffer.allocUnsafe(READ_CHUNK)
        const got = readSync(fd, chunk, 0, chunk.length, null)
        if (got === 0) break
        h.update(chunk.subarray(0, got))
        pending.push(chunk.subarray(0, got))
        // Synchronous reads (fast from the page cache), yielding now and then: pings and the
        // server's answers must not wait for a big file.
        if (n % 32 === 0) await new Promise((resolve) => setImmediate(resolve))
      }
      if (!h.digest().equals(hash)) return false
      pending.commit()
      return true
    } finally {
      closeSync(fd)
    }
  }

  /** Adds block sums the server computed (a serialized one-file index, file 0) for content `hash`. */
  importSums (hash: Buffer, sums: Uint8Array): boolean {
    if (this.has(hash)) return true
    let other: BlockIndex
    try {
      other = BlockIndex.deserialize(sums)
      if (other.blockSize !== this.blockSize || !other.hasFile(0)) return false
    } catch {
      return false // a bad answer only costs the delta
    }
    const ref = this.#nextRef++
    this.#index.importFile(other, 0, ref)
    this.#refOf.set(hash.toString('hex'), ref)
    this.#hashOf.set(ref, hash)
    this.#version++
    return true
  }

  forget (hash: Buffer): void {
    const key = hash.toString('hex')
    const ref = this.#refOf.get(key)
    if (ref === undefined) return
    this.#refOf.delete(key)
    this.#hashOf.delete(ref)
    this.#index.removeFile(ref)
    this.#version++
  }

  /** Drops content the server no longer holds (by the client's view of it). */
  prune (remote: Manifest): void {
    for (const hash of [...this.#hashOf.values()]) if (!remote.hasContent(hash)) this.forget(hash)
  }

  /**
   * Starts sending content `hash` (undefined: not known until the end): deltified against the
   * cache unless `delta` is false, and indexed unless the cache holds that content already.
   * `basis`: the content the server holds at this path, the deltifier's first guess.
   */
  upload (hash: Buffer | undefined, delta: boolean, basis?: Buffer): Upload {
    const pending = hash !== undefined && this.has(hash) ? undefined : this.#begin()
    const firstGuess = basis === undefined ? undefined : this.#refOf.get(basis.toString('hex'))
    // Bounded copies: the indexing pass holds the bytes a pending copy covers.
    const deltifier = delta && this.contents > 0 ? new Deltifier(this.#index, this.#hasher, { maxLiteral: MAX_LITERAL, firstGuess, ...(pending === undefined ? {} : { maxCopy: INDEXING_MAX_COPY }) }) : undefined
    const prefix = (chunk: Uint8Array): void => pending?.writer.push(chunk)
    if (deltifier === undefined) {
      return {
        prefix,
        push: (chunk) => { pending?.writer.push(chunk); return [{ type: 'literal', data: chunk }] },
        keepsChunks: true,
        end: () => [],
        commit: (h) => pending?.commit(h),
      }
    }
    if (pending === undefined) return { prefix, push: (chunk) => deltifier.push(chunk), keepsChunks: false, end: () => deltifier.end(), commit: () => {} }
    const both = new IndexingDeltifier(deltifier, this.#index, pending.writer)
    return { prefix, push: (chunk) => both.push(chunk), keepsChunks: false, end: () => both.end(), commit: (h) => pending.commit(h) }
  }

  async save (file: string): Promise<void> {
    const refs = [...this.#hashOf.entries()].map(([ref, hash]) => [ref, hash])
    const tmp = `${file}.${process.pid}.tmp`
    await writeFile(tmp, packr.pack({ v: FORMAT_VERSION, next: this.#nextRef, refs, index: this.#index.serialize() }))
    await rename(tmp, file)
  }

  /** Loads a saved index; anything missing or damaged just means starting empty. */
  async load (file: string): Promise<boolean> {
    try {
      const state = packr.unpack(await readFile(file)) as { v?: unknown, next?: unknown, refs?: unknown, index?: unknown }
      if (state.v !== FORMAT_VERSION || typeof state.next !== 'number' || !Array.isArray(state.refs) || !(state.index instanceof Uint8Array)) return false
      const index = BlockIndex.deserialize(state.index)
      if (index.blockSize !== BLOCK_SIZE) return false
      const refOf = new Map<string, number>()
      const hashOf = new Map<number, Buffer>()
      for (const row of state.refs as unknown[]) {
        if (!Array.isArray(row) || typeof row[0] !== 'number' || !(row[1] instanceof Uint8Array) || row[1].length !== 32 || !index.hasFile(row[0])) return false
        const hash = Buffer.from(row[1])
        refOf.set(hash.toString('hex'), row[0])
        hashOf.set(row[0], hash)
      }
      this.#index = index
      this.#refOf.clear()
      this.#hashOf.clear()
      for (const [k, v] of refOf) this.#refOf.set(k, v)
      for (const [k, v] of hashOf) this.#hashOf.set(k, v)
      // Refs in the index without a hash (an interrupted save) are dropped.
      for (const ref of [...index.fileRefs()]) if (!hashOf.has(ref)) index.removeFile(ref)
      this.#nextRef = Math.max(state.next, ...hashOf.keys(), 0) + 1
      return true
    } catch {
      return false
    }
  }
}
