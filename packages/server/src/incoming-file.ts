/**
 * A file being received: a temp file that grows by literal data and by ranges copied from
 * content the server already holds (the delta path), hashed as it is written so the whole-file
 * check costs no second read. Memory stays bounded by one copy buffer whatever the file size.
 *
 * Writes and reads are synchronous calls on a raw descriptor: into the page cache they take
 * microseconds, where each async call costs a thread-pool round trip, and a sync of many small
 * files is made of little else. Only fsync, which waits on the disk, stays asynchronous.
 */
import { createHash, type Hash } from 'node:crypto'
import { close, closeSync, constants, fchmodSync, fdatasync, fstatSync, fsync, ftruncateSync, futimesSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { promisify } from 'node:util'
import { ErrorCode, FsyncdError } from '@fsyncd/protocol'

const fsyncAsync = promisify(fsync)
const fdatasyncAsync = promisify(fdatasync)
const COPY_CHUNK = 1024 * 1024
/**
 * Bases an upload keeps open. A tar of a thousand server files names a thousand bases, one after
 * another; zero-length copies naming a new base each cost a client nothing and held a descriptor
 * each until the upload ended.
 */
const MAX_OPEN_BASES = 8
/**
 * Written bytes between write-backs started while the file is still arriving, so the fsync at
 * the end finds little left to write (on this machine: 50 ms for 100 MB at the end, 2-18 ms with
 * write-back along the way).
 */
const WRITE_BACK_EVERY = 8 * 1024 * 1024

/** Finds a server path (absolute) holding content with this SHA-256, or undefined. */
export type ContentResolver = (hash: Buffer) => Promise<string | undefined>

export class IncomingFile {
  readonly tmpPath: string
  size = 0
  readonly #fd: number
  readonly #hash: Hash = createHash('sha256')
  readonly #resolve: ContentResolver
  readonly #bases = new Map<string, { fd: number, size: number }>()
  #closed = false
  #unsynced = 0
  /** The write-back running, if any (its failure surfaces at `seal`). */
  #writeBack: Promise<void> | undefined

  /** The size the client announced: a file never grows past it (a few bytes must not ask for terabytes). */
  readonly #maxSize: number

  private constructor (tmpPath: string, fd: number, resolve: ContentResolver, maxSize: number) {
    this.tmpPath = tmpPath
    this.#fd = fd
    this.#resolve = resolve
    this.#maxSize = maxSize
  }

  /**
   * Creates the temp file. Synchronous, like the writes: handed to the thread pool, each open
   * cost the server's main thread ~20 µs (waking a pool thread is a context switch on 2 cores).
   * A 20,000-file initial sync took 3.1-3.3 s instead of 3.4-3.6 s on this machine's ext4, and
   * 5.1-5.3 s instead of 5.4 s on an ext4 with a journal. A session seals (fsyncs) its queued
   * files before it reads on, so its creates do not wait behind its own journal commits.
   */
  static create (tmpPath: string, resolve: ContentResolver, maxSize: number): IncomingFile {
    return new IncomingFile(tmpPath, openSync(tmpPath, 'wx', 0o600), resolve, maxSize)
  }

  #reserve (length: number): void {
    if (this.size + length > this.#maxSize) throw new FsyncdError(ErrorCode.HASH_MISMATCH, `more than the ${this.#maxSize} bytes announced`)
  }

  /**
   * Continues a partial upload (see Partials): moves it to `tmpPath`, cuts it to `resume` bytes
   * and checks they hash to `prefix`, or throws MISSING (the client then sends it all).
   */
  static async resume (partialPath: string, tmpPath: string, resume: number, prefix: Buffer, resolve: ContentResolver, maxSize: number): Promise<IncomingFile> {
    renameSync(partialPath, tmpPath)
    const file = new IncomingFile(tmpPath, openSync(tmpPath, 'r+'), resolve, maxSize)
    try {
      if (fstatSync(file.#fd).size < resume) throw new FsyncdError(ErrorCode.MISSING, `the partial upload holds fewer than ${resume} bytes`)
      ftruncateSync(file.#fd, resume)
      const buf = Buffer.allocUnsafe(COPY_CHUNK)
      while (file.size < resume) {
        const got = readSync(file.#fd, buf, 0, Math.min(buf.length, resume - file.size), file.size)
        if (got === 0) throw new FsyncdError(ErrorCode.MISSING, 'the partial upload shrank')
        file.#hash.update(buf.subarray(0, got))
        file.size += got
        // Other sessions go on while a big prefix is hashed.
        if (file.size % WRITE_BACK_EVERY < got) await new Promise((resolve) => setImmediate(resolve))
      }
      if (!file.digest().equals(prefix)) throw new FsyncdError(ErrorCode.MISSING, 'the partial upload differs from the client\'s file')
      return file
    } catch (err) {
      file.discard()
      throw err
    }
  }

  write (data: Uint8Array): void {
    this.#reserve(data.length)
    this.#hash.update(data)
    let off = 0
    while (off < data.length) off += writeSync(this.#fd, data, off, data.length - off, this.size + off)
    this.size += data.length
    this.#unsynced += data.length
    if (this.#unsynced >= WRITE_BACK_EVERY && this.#writeBack === undefined) {
      this.#unsynced = 0
      const running = fdatasyncAsync(this.#fd)
      this.#writeBack = running
      running.then(() => { if (this.#writeBack === running) this.#writeBack = undefined }, () => {})
    }
  }

  /**
   * Appends `length` bytes at `offset` of server content `base` (a SHA-256). A range outside the
   * base, or a base the server does not have, is an error: the client then falls back to data.
   */
  async copy (base: Buffer, offset: number, length: number): Promise<void> {
    this.#reserve(length)
    const src = await this.#base(base)
    if (offset + length > src.size) {
      throw new FsyncdError(ErrorCode.MISSING, `copy of ${length} bytes at ${offset} past the end of a ${src.size}-byte base`)
    }
    const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, Math.max(length, 1)))
    let done = 0
    while (done < length) {
      const got = readSync(src.fd, buf, 0, Math.min(buf.length, length - done), offset + done)
      if (got === 0) throw new FsyncdError(ErrorCode.MISSING, 'base shrank while being copied from')
      this.write(buf.subarray(0, got))
      done += got
      // Let a write-back start, and the connection breathe, during a long copy.
      if (done % WRITE_BACK_EVERY < got) await new Promise((resolve) => setImmediate(resolve))
    }
  }

  digest (): Buffer {
    return this.#hash.copy().digest()
  }

  /** Sets mode and mtime, and makes the content durable. */
  async seal (mode: number, mtime: number): Promise<void> {
    fchmodSync(this.#fd, mode)
    futimesSync(this.#fd, new Date(mtime), new Date(mtime))
    await this.#writeBack
    await fsyncAsync(this.#fd)
  }

  /** Makes what arrived durable and moves it to `path` (an upload cut short, kept to resume). */
  async keepAs (path: string): Promise<void> {
    try {
      await this.#writeBack?.catch(() => {})
      await fsyncAsync(this.#fd)
    } finally {
      this.close()
    }
    renameSync(this.tmpPath, path)
  }

  discard (): void {
    this.close()
    try { unlinkSync(this.tmpPath) } catch {}
  }

  /**
   * Closes the file and, unless `keepBases`, the bases it copied from. A base may be the version
   * this file replaces: its last close frees it (22 ms for 100 MB here), so the store keeps it
   * open across the rename and then lets `releaseBases` close it off this thread.
   */
  close (keepBases = false): void {
    if (this.#closed) return
    this.#closed = true
    if (!keepBases) this.releaseBases(true)
    // A write-back still queued would sync whatever file reuses the descriptor: close after it.
    const fd = this.#fd
    if (this.#writeBack === undefined) {
      closeSync(fd)
      return
    }
    const closeNow = (): void => { try { closeSync(fd) } catch {} }
    this.#writeBack.then(closeNow, closeNow)
  }

  releaseBases (now = false): void {
    for (const b of this.#bases.values()) {
      if (now) closeSync(b.fd)
      else close(b.fd, () => {})
    }
    this.#bases.clear()
  }

  /** An open base, the most recently used last; past MAX_OPEN_BASES the least recent is closed. */
  async #base (hash: Buffer): Promise<{ fd: number, size: number }> {
    const key = hash.toString('hex')
    let b = this.#bases.get(key)
    if (b !== undefined) {
      this.#bases.delete(key)
      this.#bases.set(key, b)
      return b
    }
    const path = await this.#resolve(hash)
    if (path === undefined) throw noBase(key)
    b = openBase(path, key)
    // Copies of one upload run one after another, so the one closed is not being read.
    if (this.#bases.size >= MAX_OPEN_BASES) {
      const [oldest, open] = this.#bases.entries().next().value as [string, { fd: number }]
      this.#bases.delete(oldest)
      closeSync(open.fd)
    }
    this.#bases.set(key, b)
    return b
  }
}

const noBase = (key: string): FsyncdError => new FsyncdError(ErrorCode.MISSING, `no base ${key.slice(0, 16)}… on the server`)

/**
 * Opens the file the index says holds content `key`, as a regular file only: something outside
 * fsyncd may have put a symlink (it is not followed) or a FIFO (it would block) in its place.
 * Such a base is missing, as a removed one is: the client then sends the content itself.
 */
function openBase (path: string, key: string): { fd: number, size: number } {
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ELOOP' || code === 'ENOENT' || code === 'ENOTDIR') throw noBase(key)
    throw err
  }
  try {
    const st = fstatSync(fd)
    if (!st.isFile()) throw noBase(key)
    return { fd, size: st.size }
  } catch (err) {
    closeSync(fd)
    throw err
  }
}
