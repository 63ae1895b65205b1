/**
 * A file being received: a temp file that grows by literal data and by ranges copied from
 * content the server already holds (the delta path), hashed as it is written so the whole-file
 * check costs no second read. Memory stays bounded by one copy buffer whatever the file size.
 */
import { createHash, type Hash } from 'node:crypto'
import { open, unlink, type FileHandle } from 'node:fs/promises'
import { ErrorCode, FsyncdError } from '@fsyncd/protocol'

const COPY_CHUNK = 1024 * 1024

/** Finds a server path holding content with this SHA-256 (or undefined). */
export type ContentResolver = (hash: Buffer) => Promise<string | undefined>

export class IncomingFile {
  readonly tmpPath: string
  readonly handle: FileHandle
  size = 0
  readonly #hash: Hash = createHash('sha256')
  readonly #resolve: ContentResolver
  readonly #bases = new Map<string, { fh: FileHandle, size: number }>()
  #closed = false

  private constructor (tmpPath: string, handle: FileHandle, resolve: ContentResolver) {
    this.tmpPath = tmpPath
    this.handle = handle
    this.#resolve = resolve
  }

  static async create (tmpPath: string, resolve: ContentResolver): Promise<IncomingFile> {
    return new IncomingFile(tmpPath, await open(tmpPath, 'wx', 0o600), resolve)
  }

  async write (data: Uint8Array): Promise<void> {
    this.#hash.update(data)
    let off = 0
    while (off < data.length) {
      const { bytesWritten } = await this.handle.write(data, off, data.length - off, null)
      off += bytesWritten
    }
    this.size += data.length
  }

  /**
   * Appends `length` bytes at `offset` of server content `base` (a SHA-256). A range outside the
   * base, or a base the server does not have, is an error: the client then falls back to data.
   */
  async copy (base: Buffer, offset: number, length: number): Promise<void> {
    const src = await this.#base(base)
    if (offset + length > src.size) {
      throw new FsyncdError(ErrorCode.MISSING, `copy of ${length} bytes at ${offset} past the end of a ${src.size}-byte base`)
    }
    const buf = Buffer.allocUnsafe(Math.min(COPY_CHUNK, Math.max(length, 1)))
    let done = 0
    while (done < length) {
      const want = Math.min(buf.length, length - done)
      const { bytesRead } = await src.fh.read(buf, 0, want, offset + done)
      if (bytesRead === 0) throw new FsyncdError(ErrorCode.MISSING, 'base shrank while being copied from')
      await this.write(buf.subarray(0, bytesRead))
      done += bytesRead
    }
  }

  digest (): Buffer {
    return this.#hash.copy().digest()
  }

  async discard (): Promise<void> {
    await this.close()
    await unlink(this.tmpPath).catch(() => {})
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const b of this.#bases.values()) await b.fh.close().catch(() => {})
    await this.handle.close().catch(() => {})
  }

  async #base (hash: Buffer): Promise<{ fh: FileHandle, size: number }> {
    const key = hash.toString('hex')
    let b = this.#bases.get(key)
    if (b === undefined) {
      const path = await this.#resolve(hash)
      if (path === undefined) throw new FsyncdError(ErrorCode.MISSING, `no base ${key.slice(0, 16)}… on the server`)
      const fh = await open(path, 'r')
      b = { fh, size: (await fh.stat()).size }
      this.#bases.set(key, b)
    }
    return b
  }
}
