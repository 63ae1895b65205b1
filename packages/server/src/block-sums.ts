/**
 * The server's persistent block index: for each content it holds (by SHA-256), the block sums a
 * client deltifies against (rsync's weak sum + xxh64 per block, a serialized one-file BlockIndex)
 * in DEST/.fsyncd/sums/<sha256>-<block size>. Keyed by content, an entry is never stale; it is
 * computed in the background once a file lands (or on demand, when a `getsig` comes first), read
 * back for every later `getsig`, and dropped when its content leaves the destination.
 *
 * A client that pushed the content keeps its own copy of these sums and never asks; a cold one
 * (a new machine, a lost state folder) asks for the old versions of the files it is about to send.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, unlinkSync } from 'node:fs'
import { open, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BlockIndex, createStrongHasher, type StrongHasher } from '@fsyncd/delta'
import { MAX_SIG_BYTES, SIG_BLOCK_SIZE } from '@fsyncd/protocol'

/** Contents smaller than this are not worth sums: a cold client sends them whole. */
export const SUMS_MIN_SIZE = 64 * 1024
const NAME = /^([0-9a-f]{64})-(\d+)$/
/** Quiet time after the last file landed before background work starts. */
const IDLE_MS = 1000

let hasher: Promise<StrongHasher> | undefined

export class BlockSums {
  readonly #dir: string
  /** Where content lives now (undefined: gone). */
  readonly #locate: (hash: Buffer) => Promise<string | undefined>
  readonly #queue = new Map<string, Buffer>()
  #timer: NodeJS.Timeout | undefined
  #working: Promise<void> = Promise.resolve()

  constructor (dir: string, locate: (hash: Buffer) => Promise<string | undefined>) {
    this.#dir = dir
    this.#locate = locate
    mkdirSync(dir, { recursive: true })
  }

  /** Drops the sums of content the destination no longer holds. */
  prune (holds: (hash: Buffer) => boolean): void {
    for (const name of readdirSync(this.#dir)) {
      const m = NAME.exec(name)
      if (m !== null && holds(Buffer.from(m[1] as string, 'hex'))) continue
      try { unlinkSync(join(this.#dir, name)) } catch {}
    }
  }

  /** Computes the sums of content that just landed, once the server is quiet. */
  schedule (hash: Buffer, size: number): void {
    if (size < SUMS_MIN_SIZE || Math.ceil(size / SIG_BLOCK_SIZE) * 12 > MAX_SIG_BYTES) return
    this.#queue.set(hash.toString('hex'), hash)
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#working = this.#working.then(async () => await this.#drain())
    }, IDLE_MS)
    this.#timer.unref()
  }

  /** The serialized sums of content `hash` at `blockSize`, or undefined when the server does not hold it. */
  async get (hash: Buffer, blockSize: number): Promise<Uint8Array | undefined> {
    const file = join(this.#dir, `${hash.toString('hex')}-${blockSize}`)
    const kept = await readFile(file).catch(() => undefined)
    if (kept !== undefined && valid(kept, blockSize)) return kept
    const path = await this.#locate(hash)
    if (path === undefined) return undefined
    const sums = await compute(path, hash, blockSize)
    // Only the size clients use is kept: any other a peer asks for is computed, never stored.
    if (sums !== undefined && blockSize === SIG_BLOCK_SIZE) await store(file, sums).catch(() => {})
    return sums
  }

  /** Waits for background work (tests, shutdown). */
  async idle (): Promise<void> {
    clearTimeout(this.#timer)
    await this.#working
  }

  async #drain (): Promise<void> {
    for (const [key, hash] of this.#queue) {
      this.#queue.delete(key)
      await this.get(hash, SIG_BLOCK_SIZE).catch(() => {}) // a cache: a failure only costs a later computation
    }
  }
}

function valid (bytes: Uint8Array, blockSize: number): boolean {
  try {
    const index = BlockIndex.deserialize(bytes)
    return index.blockSize === blockSize && index.hasFile(0)
  } catch {
    return false
  }
}

/** Sums of the file at `path` if it still holds content `hash` (it may have changed on disk). */
async function compute (path: string, hash: Buffer, blockSize: number): Promise<Uint8Array | undefined> {
  hasher ??= createStrongHasher()
  const sha = createHash('sha256')
  const index = new BlockIndex(blockSize)
  const writer = index.addFile(0, await hasher)
  const fh = await open(path, 'r').catch(() => undefined)
  if (fh === undefined) return undefined
  try {
    // Sums that could not be sent are not computed (12 bytes a block, in memory twice).
    if (Math.ceil((await fh.stat()).size / blockSize) * 12 > MAX_SIG_BYTES) return undefined
    const buf = Buffer.allocUnsafe(1024 * 1024)
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null)
      if (bytesRead === 0) break
      sha.update(buf.subarray(0, bytesRead))
      writer.push(buf.subarray(0, bytesRead))
    }
  } finally {
    await fh.close()
  }
  writer.end()
  return sha.digest().equals(hash) ? index.serialize() : undefined
}

async function store (file: string, sums: Uint8Array): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, sums)
  await rename(tmp, file)
}
