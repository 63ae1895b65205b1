/**
 * The server's persistent block index: for each content it holds (by SHA-256), the block sums a
 * client deltifies against (rsync's weak sum + xxh64 per block, a serialized one-file BlockIndex)
 * in DEST/.fsyncd/sums/<sha256>-<block size>. Keyed by content, an entry is never stale; it is
 * computed in the background once a file lands (or on demand, when a `getsig` comes first), read
 * back for every later `getsig`, and dropped when its content leaves the destination.
 *
 * Background work waits until no session has been at work for a second, and stops (to start over
 * later) when one is: reading and summing a 100 MB file costs ~130 ms of CPU, which a sync in
 * progress should not share.
 *
 * A client that pushed the content keeps its own copy of these sums and never asks; a cold one
 * (a new machine, a lost state folder) asks for the old versions of the files it is about to send.
 */
import { createHash } from 'node:crypto'
import { constants, mkdirSync, readdirSync, unlinkSync } from 'node:fs'
import { open, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { BlockIndex, createStrongHasher, type StrongHasher } from '@fsyncd/delta'
import { MAX_SIG_BYTES, SIG_BLOCK_SIZE } from '@fsyncd/protocol'

/** Contents smaller than this are not worth sums: a cold client sends them whole. */
export const SUMS_MIN_SIZE = 64 * 1024
const NAME = /^([0-9a-f]{64})-(\d+)$/
/** Quiet time (no file landed, no session at work) before background work starts. */
const QUIET_MS = 1000
/** What a computation that gave way to a session returns. */
const INTERRUPTED = Symbol('interrupted')

let hasher: Promise<StrongHasher> | undefined

export class BlockSums {
  readonly #dir: string
  /** Where content lives now (undefined: gone). */
  readonly #locate: (hash: Buffer) => Promise<string | undefined>
  readonly #quietMs: number
  readonly #queue = new Map<string, Buffer>()
  #timer: NodeJS.Timeout | undefined
  #working: Promise<void> = Promise.resolve()
  /** Bumped whenever a session is at work: background work in progress sees it and stops. */
  #activity = 0
  #lastActive = 0
  #stopped = false

  constructor (dir: string, locate: (hash: Buffer) => Promise<string | undefined>, quietMs = QUIET_MS) {
    this.#dir = dir
    this.#locate = locate
    this.#quietMs = quietMs
    mkdirSync(dir, { recursive: true })
  }

  /** Drops the sums of content the destination no longer holds. */
  prune (holds: (hash: Buffer) => boolean): void {
    let names: string[]
    // Called from a timer: a failure to list (EMFILE) must not end the server. The next prune does it.
    try { names = readdirSync(this.#dir) } catch { return }
    for (const name of names) {
      const m = NAME.exec(name)
      if (m !== null && holds(Buffer.from(m[1] as string, 'hex'))) continue
      try { unlinkSync(join(this.#dir, name)) } catch {}
    }
  }

  /** Computes the sums of content that just landed, once the server is quiet. */
  schedule (hash: Buffer, size: number): void {
    if (size < SUMS_MIN_SIZE || Math.ceil(size / SIG_BLOCK_SIZE) * 12 > MAX_SIG_BYTES) return
    this.#queue.set(hash.toString('hex'), hash)
    this.busy()
    this.#arm(this.#quietMs)
  }

  /** A session is at work (a message came in): background work waits, or stops to start over later. */
  busy (): void {
    this.#activity++
    this.#lastActive = performance.now()
  }

  /** The serialized sums of content `hash` at `blockSize`, or undefined when the server does not hold it. */
  async get (hash: Buffer, blockSize: number): Promise<Uint8Array | undefined> {
    const sums = await this.#get(hash, blockSize, () => false)
    return sums === INTERRUPTED ? undefined : sums
  }

  /** Ends background work for good: what runs stops before its next read (shutdown, tests). */
  async stop (): Promise<void> {
    this.#stopped = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    await this.#working
  }

  async #get (hash: Buffer, blockSize: number, interrupted: () => boolean): Promise<Uint8Array | undefined | typeof INTERRUPTED> {
    const file = join(this.#dir, `${hash.toString('hex')}-${blockSize}`)
    const kept = await readFile(file).catch(() => undefined)
    if (kept !== undefined && valid(kept, blockSize)) return kept
    const path = await this.#locate(hash)
    if (path === undefined) return undefined
    const sums = await compute(path, hash, blockSize, interrupted)
    // Only the size clients use is kept: any other a peer asks for is computed, never stored.
    if (sums instanceof Uint8Array && blockSize === SIG_BLOCK_SIZE) await store(file, sums).catch(() => {})
    return sums
  }

  /** Starts the background work after `delay` ms, or later if a session is at work by then. */
  #arm (delay: number): void {
    if (this.#stopped || this.#timer !== undefined) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      const quiet = performance.now() - this.#lastActive
      if (quiet < this.#quietMs) return this.#arm(this.#quietMs - quiet)
      this.#working = this.#working.then(async () => await this.#drain())
    }, delay)
    this.#timer.unref()
  }

  /** Works through the queue until a session is at work (then again once quiet) or `stop`. */
  async #drain (): Promise<void> {
    const activity = this.#activity
    const interrupted = (): boolean => this.#stopped || this.#activity !== activity
    for (const [key, hash] of this.#queue) {
      if (interrupted()) return this.#arm(this.#quietMs)
      const sums = await this.#get(hash, SIG_BLOCK_SIZE, interrupted)
        .catch(() => undefined) // a cache: a failure only costs a later computation
      this.#queue.delete(key)
      if (sums === INTERRUPTED) {
        // Queued again, last: what waits behind a big file may fit in a shorter quiet time.
        this.#queue.set(key, hash)
        return this.#arm(this.#quietMs)
      }
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

/**
 * Sums of the file at `path` if it still holds content `hash` (it may have changed on disk), or
 * INTERRUPTED when `interrupted()` says so between two reads.
 */
async function compute (path: string, hash: Buffer, blockSize: number, interrupted: () => boolean): Promise<Uint8Array | undefined | typeof INTERRUPTED> {
  hasher ??= createStrongHasher()
  const sha = createHash('sha256')
  const index = new BlockIndex(blockSize)
  const writer = index.addFile(0, await hasher)
  // Not through a symlink, nor blocking on a FIFO, that something outside fsyncd put in its place.
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined)
  if (fh === undefined) return undefined
  try {
    const st = await fh.stat()
    // Sums that could not be sent are not computed (12 bytes a block, in memory twice).
    if (!st.isFile() || Math.ceil(st.size / blockSize) * 12 > MAX_SIG_BYTES) return undefined
    const buf = Buffer.allocUnsafe(1024 * 1024)
    for (;;) {
      if (interrupted()) return INTERRUPTED
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
