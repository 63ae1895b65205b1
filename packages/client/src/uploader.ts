/**
 * Sends planned operations down one connection, pipelined: many operations and files in flight,
 * bounded by `maxInflightOps` and `maxInflightBytes`, each retired by the server's ack (durable)
 * or nack. A `file` whose content the server turns out not to have (nack MISSING) is sent again
 * with its data. File content goes through `#sendStreamed`: the one place the delta engine plugs in.
 */
import { readSync, type Stats } from 'node:fs'
import { open } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { extname } from 'node:path'
import type { DeltaOp } from '@fsyncd/delta'
import { type Connection, ErrorCode, FsyncdError, type Manifest, HEADER_ITEMS_BUDGET, MAX_FILES_PER_BATCH, MAX_SIG_BYTES, MAX_RANGES_PER_COPY, type Operation, type PartialUpload, type PutFile, smallFileBound } from '@fsyncd/protocol'
import { hashPrefix, isHashPending, mtimeOf, readSmallFileStable, sameVersion } from '@fsyncd/tree'
import { ENCODE_ONCE_MAX, type Encoded, encodeOnce, LiteralEncoder, looksCompressible } from './literals.js'
import type { FileEntry, PlannedOp } from './planner.js'
import type { ServerBlocks } from './server-blocks.js'
const CHUNK = 1024 * 1024
/** Chunks read between turns given to the event loop while a file streams. */
const YIELD_EVERY_CHUNKS = 64
/** Files up to this size travel inline: batched many to a frame, or alone in one. */
const INLINE_MAX = 64 * 1024
/**
 * A batch of small files is sent once it holds this much content. zstd made the bench's small
 * text files (9.5 MB) 2.50 MB in 1 MiB batches, 2.56 MB in 256 KiB ones.
 */
const BATCH_BYTES = 1024 * 1024
/**
 * Messages waiting in the send chain (see #enqueue) beyond which the sender waits: enough to keep
 * the thread pool compressing while this thread reads and deltifies, few enough to bound memory
 * (each holds at most a batch or a read chunk).
 */
const MAX_QUEUED_SENDS = 4
/** Operations sent and not yet answered, at most (unless UploaderOptions say otherwise). */
const MAX_INFLIGHT_OPS = 4096
/** Nacked files resent at once (see #retry). */
const MAX_RETRIES_AT_ONCE = 2

/**
 * Kinds (extensions) with a batch of their own at once; files of further kinds share one more
 * batch, in the walk's order, until the batches are sent. Bounds memory at this many BATCH_BYTES
 * (and two more).
 */
const MAX_KINDS = 16
/** The kind of the shared batch (no extension is spelled so: see kindOf). */
const OTHER_KINDS = '/'
/** Kinds whose codec is remembered (see #encoderFor). */
const MAX_ENCODERS = 64

/** Small files gathered to travel in one `files` message: of one kind, or (no kind) incompressible. */
class Batch {
  constructor (readonly kind?: string) {}

  items: Array<{ id: number, pending: Pending, op: Extract<PlannedOp, { t: 'file' }>, data: Buffer }> = []
  bytes = 0
  headerBytes = 0

  take (): Batch['items'] {
    const items = this.items
    this.items = []
    this.bytes = 0
    this.headerBytes = 0
    return items
  }
}

/**
 * A file's kind, for batching: its extension, lower-cased ('' for none; a long one is no kind's).
 * Files of one kind are alike more often than files side by side are.
 */
function kindOf (path: string): string {
  const ext = extname(path) // '' for `name` and `.name`, '.' for `name.`: all no kind
  return ext.length > 17 ? '' : ext.slice(1).toLowerCase()
}

/** The whole content of a small file if it is exactly the planned version, else undefined. */
function readStable (abs: string, entry: FileEntry): Buffer | undefined {
  let read: ReturnType<typeof readSmallFileStable>
  try {
    read = readSmallFileStable(abs)
  } catch {
    return undefined // gone or unreadable since the scan: the rescan will say which
  }
  if (read === undefined || read.data.length !== entry.size || !createHash('sha256').update(read.data).digest().equals(entry.hash)) return undefined
  return read.data
}

export interface UploadStats {
  ops: number
  filesSent: number
  filesDeduplicated: number
  deleted: number
  /** Bytes of file content this sync put on the server (uploaded, rebuilt or copied there). */
  dataBytes: number
  /** Literal bytes sent after compression. */
  literalBytes: number
  /** Bytes the server copied from content it held (the delta path). */
  copiedBytes: number
}

export interface Failure { path: string, code: ErrorCode, message: string }

interface Pending {
  op: PlannedOp
  bytes: number
  resumed?: boolean
  nacked?: boolean
  /** The content's SHA-256 as the upload found it, for a file the scan left unhashed. */
  hash?: Buffer
  /**
   * None of the file's content went: it turned out to hold the server's content (only its
   * attributes went), or it could not be read (nothing went). Not counted as sent.
   */
  contentless?: boolean
  /** What the stats counted for this file (taken back if the server refuses it). */
  counted?: 'sent' | 'deduplicated'
  /**
   * The file was not, or did not stay, the version planned while it was read (it grew: a log
   * being written): its first `size` bytes went anyway, for the server to check against the
   * hash the scan found, and the file is looked at again for what came since.
   */
  drifted?: boolean
}

/**
 * A `file` upload, and whether it may use the delta path (not after the server refused a delta)
 * or resume a partial upload (not after the server refused to).
 */
type FileOp = Extract<PlannedOp, { t: 'file' }> & { noDelta?: boolean, noResume?: boolean }

export interface UploaderOptions {
  root: string
  /** The client's model of the server; invalidated where an operation failed. */
  remote: Manifest
  maxInflightOps?: number
  maxInflightBytes?: number
  /** Told about a path that must be looked at again (it changed while being sent, or failed). */
  onDirty?: (path: string) => void
  /** Whether a file's stat is the version the scan hashed (undefined: unknown; size and mtime decide). */
  isScanned?: (path: string, st: Stats) => boolean | undefined
  /** Told about each operation the server refused. */
  onFailure?: (f: Failure) => void
  /**
   * Told the hash of a file the scan left unhashed (see LocalTree's ScanOptions), read from the
   * version `st` describes, once its upload hashed it.
   */
  onHashed?: (path: string, st: Stats, hash: Buffer) => void
  /**
   * Told about a file the scan left unhashed that changed while its upload read it: hashed by
   * the scan from now on, so that its next upload can go while it grows (see #sendStreamed).
   */
  onUnstable?: (path: string) => void
  /** The client's cache of the server's blocks; without it every upload is literal. */
  blocks?: ServerBlocks
  /** Uploads cut short that the server kept (`ready.partials`): the bytes it holds of each content. */
  partials?: PartialUpload[]
}

export class Uploader {
  readonly stats: UploadStats = { ops: 0, filesSent: 0, filesDeduplicated: 0, deleted: 0, dataBytes: 0, literalBytes: 0, copiedBytes: 0 }
  readonly failures: Failure[] = []
  readonly #conn: Connection
  readonly #opts: UploaderOptions
  readonly #pending = new Map<number, Pending>()
  readonly #sigWaiters = new Map<number, (sums: Uint8Array | undefined) => void>()
  readonly #sigParts = new Map<number, Buffer[]>()
  /** Nacked operations being handled or waiting to be (see #retry). */
  #retrying = 0
  /** Ids sent by the resend of a nacked operation (`origin`), for settled(). */
  #resends: Array<{ origin: number, lo: number, hi: number }> = []
  readonly #retries: Array<() => Promise<void>> = []
  #retriesRunning = 0
  /**
   * Small files worth compressing (by `looksCompressible`), a batch for each kind (see kindOf),
   * oldest kind first; the others go raw, together.
   */
  readonly #byKind = new Map<string, Batch>()
  readonly #raw = new Batch()
  /**
   * A kind's batches, one after the other, compress like one file (its codec chosen once per
   * 16 MiB, not per batch): by kind, least recently used first.
   */
  readonly #encoders = new Map<string, LiteralEncoder>()
  /** Sends queued in order, each after its payload is compressed (see #enqueue); oldest first. */
  #queued: Array<Promise<void>> = []
  #chain: Promise<void> = Promise.resolve()
  #nextId = 1
  #inflightBytes = 0
  #waiters: Array<() => void> = []
  #readError: Error | undefined
  /** `ready.partials` by `<hash hex>-<size>`: each resumable once. */
  readonly #partials = new Map<string, number>()

  constructor (conn: Connection, opts: UploaderOptions) {
    this.#conn = conn
    this.#opts = opts
    for (const [hash, size, have] of opts.partials ?? []) this.#partials.set(`${hash.toString('hex')}-${size}`, have)
  }

  get inflight (): number {
    return this.#pending.size
  }

  /** Reads the server's answers until the connection ends. Run it alongside `push`. */
  async readAnswers (): Promise<void> {
    try {
      for await (const { msg, payload } of this.#conn) {
        if (msg.t === 'sig') {
          // Sums bigger than a frame come in parts (`more`), bounded by MAX_SIG_BYTES in all.
          if (!this.#sigWaiters.has(msg.id)) continue // not asked for (or given up on)
          const parts = this.#sigParts.get(msg.id) ?? []
          if (msg.found) parts.push(payload)
          if (msg.found && msg.more === true && parts.reduce((n, p) => n + p.length, 0) <= MAX_SIG_BYTES) {
            this.#sigParts.set(msg.id, parts)
            continue
          }
          this.#sigParts.delete(msg.id)
          const waiter = this.#sigWaiters.get(msg.id)
          this.#sigWaiters.delete(msg.id)
          waiter?.(msg.found && msg.more !== true ? Buffer.concat(parts) : undefined)
        } else if (msg.t === 'ack') {
          for (const id of msg.ids) this.#retire(id)
        } else if (msg.t === 'nack') {
          const p = this.#pending.get(msg.id)
          if (p !== undefined) {
            p.nacked = true // a file still streaming stops (see #sendStreamed)
            // Not awaited: a resend may wait for room in the window, which only acks read here make.
            const { code, message } = msg
            this.#retry(msg.id, async () => await this.#onNack(p, code, message))
          }
          this.#retire(msg.id)
        } else if (msg.t === 'error') {
          throw new FsyncdError(msg.code, `server: ${msg.message}`)
        } else if (msg.t !== 'pong') {
          throw new Error(`unexpected "${msg.t}" from the server`)
        }
      }
      if (this.#pending.size > 0) throw new FsyncdError(ErrorCode.CLOSED, 'the server closed the connection with operations unacknowledged')
    } catch (err) {
      this.#readError = err as Error
      throw err
    } finally {
      this.#readError ??= new Error('connection closed')
      for (const w of this.#sigWaiters.values()) w(undefined)
      this.#sigWaiters.clear()
      this.#wake()
    }
  }

  /** Sends `ops` in order, and waits until everything queued is on its way (see `add`). */
  async push (ops: Iterable<PlannedOp>): Promise<void> {
    await this.add(ops)
    await this.#sendBatches()
    await this.#settle()
  }

  /**
   * Sends `ops` in order, but small files may stay gathered in their batches (see #addToBatch)
   * for the ops of a later `add` or `push` to fill: for a plan that arrives in parts.
   */
  async add (ops: Iterable<PlannedOp>): Promise<void> {
    for (const op of ops) {
      // A file whose hash is pending streams whatever its size: only that path hashes as it reads.
      if (op.t === 'file' && !op.have && op.entry.size <= INLINE_MAX && !isHashPending(op.entry)) {
        await this.#addToBatch(op)
        continue
      }
      // Folders and links may go ahead of the small files gathered so far (a plan creates a
      // parent before its children, so no gathered file needs them): batches then fill across
      // folders. Anything else may depend on those files (a move, a delete, content to copy).
      if (op.t !== 'mkdir' && op.t !== 'symlink') await this.#sendBatches()
      await this.#send(op)
    }
  }

  /**
   * Asks the server for the block sums of content it holds (see protocol/SPEC.md `getsig`);
   * undefined when it has none to give. Requests are pipelined: call many, then await them.
   */
  async requestSums (hash: Buffer, blockSize: number): Promise<Uint8Array | undefined> {
    if (this.#readError !== undefined) return undefined
    const id = this.#nextId++
    const answer = new Promise<Uint8Array | undefined>((resolve) => this.#sigWaiters.set(id, resolve))
    await this.#conn.send({ t: 'getsig', id, hash, blockSize })
    return await answer
  }

  /**
   * Handles a nack, at most MAX_RETRIES_AT_ONCE at a time: a base the server lost can refuse
   * hundreds of files at once, and each resend streams a file (an open file, deltifier buffers,
   * an upload slot on the server, which caps them).
   */
  #retry (origin: number, job: () => Promise<void>): void {
    this.#retrying++
    this.#retries.push(async () => {
      const lo = this.#nextId
      try {
        await job()
      } finally {
        // What it sent (and maybe ops of others sent meanwhile): settled() waits for them too.
        this.#resends.push({ origin, lo, hi: this.#nextId })
      }
    })
    this.#runRetries()
  }

  #runRetries (): void {
    while (this.#retriesRunning < MAX_RETRIES_AT_ONCE && this.#retries.length > 0) {
      const next = this.#retries.shift() as () => Promise<void>
      this.#retriesRunning++
      next().catch((err: unknown) => {
        this.#readError ??= err as Error
        this.#conn.destroy(err as Error)
      }).finally(() => {
        this.#retriesRunning--
        this.#retrying--
        this.#wake()
        this.#runRetries()
      })
    }
  }

  /** The id of the last operation sent so far (see settled). */
  get lastId (): number {
    return this.#nextId - 1
  }

  /**
   * Resolves when every operation with an id up to `upTo` is acknowledged (or failed), and so
   * is the resend of any of them that was refused. Later operations may still be pending.
   */
  async settled (upTo: number): Promise<void> {
    for (;;) {
      this.#resends = this.#resends.filter((r) => this.#pendingIn(r.lo, r.hi))
      const first = this.#pending.keys().next()
      const own = first.done !== true && first.value <= upTo
      if (!own && this.#retrying === 0 && !this.#resends.some((r) => r.origin <= upTo)) return
      await this.#wait()
    }
  }

  /** Whether an operation with an id in [lo, hi) is pending. */
  #pendingIn (lo: number, hi: number): boolean {
    for (const id of this.#pending.keys()) {
      if (id >= hi) return false
      if (id >= lo) return true
    }
    return false
  }

  /** Resolves when every operation sent so far is acknowledged (or failed). */
  async drain (): Promise<void> {
    await this.#settle()
    await this.settled(Infinity)
  }

  /** Waits for room in the window, then registers an operation under a new id. */
  async #admit (op: PlannedOp): Promise<{ id: number, pending: Pending }> {
    const max = this.#opts.maxInflightOps ?? MAX_INFLIGHT_OPS
    const maxBytes = this.#opts.maxInflightBytes ?? 64 * 1024 * 1024
    while (this.#pending.size >= max || this.#inflightBytes >= maxBytes) await this.#wait()
    const id = this.#nextId++
    const pending: Pending = { op, bytes: 0 }
    this.#pending.set(id, pending)
    this.stats.ops++
    return { id, pending }
  }

  /**
   * Small files are gathered and sent many to a frame (`files`), compressed together: one
   * frame instead of one per file, and one compression context, so files that share words
   * compress like one text. A batch holds one kind of file: what is alike compresses best
   * together (see literals.ts: on the bench's `varied`, 16.6 MB of zstd by kind against 18.6 MB
   * in the walk's order).
   */
  async #addToBatch (op: Extract<PlannedOp, { t: 'file' }>): Promise<void> {
    const data = readStable(`${this.#opts.root}/${op.path}`, op.entry)
    if (data === undefined) {
      this.#notSent(op)
      return
    }
    const batch = looksCompressible(data) ? this.#batchOf(kindOf(op.path)) : this.#raw
    // Within the count, the content and the frame header's size (long paths fill it first).
    const headerBytes = smallFileBound(op.path)
    if (batch.headerBytes + headerBytes > HEADER_ITEMS_BUDGET) await this.#sendBatch(batch)
    // Gathered files hold places in the window until their batch goes: with many kinds of tiny
    // files they could fill it, and #admit would wait for acks of files never sent.
    if (this.#gathered() >= this.#maxGathered) await this.#sendBatch(this.#fullest())
    const { id, pending } = await this.#admit(op)
    batch.items.push({ id, pending, op, data })
    batch.bytes += data.length
    batch.headerBytes += headerBytes
    if (batch.bytes >= BATCH_BYTES || batch.items.length >= MAX_FILES_PER_BATCH) await this.#sendBatch(batch)
  }

  /** Files gathered in batches, not sent yet, at most: half the window (see #addToBatch). */
  get #maxGathered (): number {
    return Math.max(1, Math.floor((this.#opts.maxInflightOps ?? MAX_INFLIGHT_OPS) / 2))
  }

  /** Files gathered in batches, not sent yet. */
  #gathered (): number {
    let n = this.#raw.items.length
    for (const b of this.#byKind.values()) n += b.items.length
    return n
  }

  /** The batch holding the most files. */
  #fullest (): Batch {
    let fullest = this.#raw
    for (const b of this.#byKind.values()) if (b.items.length > fullest.items.length) fullest = b
    return fullest
  }

  /** The open batch of `kind`, or the shared one once MAX_KINDS have their own. */
  #batchOf (kind: string): Batch {
    let batch = this.#byKind.get(kind)
    if (batch === undefined) {
      if (this.#byKind.size >= MAX_KINDS) kind = OTHER_KINDS
      batch = this.#byKind.get(kind) ?? new Batch(kind)
      this.#byKind.set(kind, batch)
    }
    return batch
  }

  /** The literal encoder of a kind's batches. */
  #encoderFor (kind: string): LiteralEncoder {
    let encoder = this.#encoders.get(kind)
    if (encoder !== undefined) this.#encoders.delete(kind) // set again below: most recently used
    else if (this.#encoders.size >= MAX_ENCODERS) this.#encoders.delete(this.#encoders.keys().next().value as string)
    encoder ??= new LiteralEncoder()
    this.#encoders.set(kind, encoder)
    return encoder
  }

  async #sendBatches (): Promise<void> {
    for (const batch of this.#byKind.values()) await this.#sendBatch(batch)
    this.#byKind.clear()
    await this.#sendBatch(this.#raw)
  }

  /** Compresses a batch on the thread pool and queues its `files` message. */
  async #sendBatch (batch: Batch): Promise<void> {
    const items = batch.take()
    if (items.length === 0) return
    const data = Buffer.concat(items.map((b) => b.data))
    const encoded = batch.kind === undefined
      ? Promise.resolve<Encoded>({ z: 0, payload: data })
      : data.length <= ENCODE_ONCE_MAX ? encodeOnce(data) : this.#encoderFor(batch.kind).encode(data)
    await this.#enqueue(encoded, async ({ z, payload }) => {
      const share = payload.length / items.length
      for (const b of items) {
        b.pending.bytes = share
        this.#inflightBytes += share
      }
      await this.#conn.send({ t: 'files', z, files: items.map((b) => [b.id, b.op.path, b.op.entry.size, b.op.entry.mode, b.op.entry.mtime, b.op.entry.hash]) }, payload)
      for (const b of items) {
        const pending = this.#opts.blocks?.begin(b.op.entry.hash)
        pending?.push(b.data)
        pending?.commit()
        this.#count(b.pending, 'sent')
      }
      this.stats.literalBytes += payload.length
    })
  }

  /**
   * Queues a message whose payload is still being compressed: `send` runs once `encoded` is ready
   * and every message queued before it is sent. Compression thus runs on the thread pool while
   * this thread goes on reading and deltifying; the wire still sees the messages in order. Waits
   * while MAX_QUEUED_SENDS are queued.
   */
  async #enqueue<T> (encoded: Promise<T>, send: (value: T) => Promise<void>): Promise<void> {
    encoded.catch(() => {}) // handled in the chain; not an unhandled rejection meanwhile
    const job = this.#chain.then(async () => { await send(await encoded) })
    job.catch(() => {}) // awaited by #settle or below
    this.#chain = job
    this.#queued.push(job)
    while (this.#queued.length >= MAX_QUEUED_SENDS) await this.#queued.shift()
  }

  /** Resolves when every queued message is sent (throws what failed). */
  async #settle (): Promise<void> {
    this.#queued = []
    await this.#chain
  }

  /**
   * The file is not the version `op` planned, and the server committed none of it: look again
   * when quiet. The server still holds what it held before (`op.basis`), which the model says
   * again (it stays a base for the next attempt's delta; forgotten, the block cache would drop
   * it), unless a later plan already moved the model on for this path.
   */
  #notSent (op: FileOp): void {
    if (this.#stillPlanned(op)) {
      if (op.basis !== undefined) this.#opts.remote.set(op.path, op.basis)
      else this.#opts.remote.delete(op.path)
    }
    this.#opts.onDirty?.(op.path)
  }

  /**
   * Whether the model still says what the plan of `op` made it say: a later plan for the same
   * path (a newer version) has not run since. A retry of an upload a later plan superseded
   * must not send the older version.
   */
  #stillPlanned (op: FileOp): boolean {
    const r = this.#opts.remote.get(op.path)
    if (isHashPending(op.entry)) return r === undefined
    const e = op.entry
    return r?.kind === 'file' && r.size === e.size && r.mtime === e.mtime && r.mode === e.mode && r.hash.equals(e.hash)
  }

  async #send (op: PlannedOp): Promise<void> {
    if (op.t !== 'file') {
      const { id } = await this.#admit(op)
      if (op.t === 'delete') this.stats.deleted++
      // In the send chain: after what is queued, without waiting for it.
      await this.#enqueue(Promise.resolve(), async () => { await this.#conn.send(toMessage(op, id)) })
      return
    }
    await this.#settle() // what is queued goes first
    const { id, pending } = await this.#admit(op)
    const e = op.entry
    if (op.have) {
      this.#count(pending, 'deduplicated')
      await this.#conn.send({ t: 'file', id, path: op.path, size: e.size, mode: e.mode, mtime: e.mtime, hash: e.hash, have: true })
      return
    }
    const sent = e.size <= INLINE_MAX && !isHashPending(e)
      ? await this.#sendInline(id, op.path, e)
      : await this.#sendStreamed(id, pending, op)
    // Counted in the window unless already answered (a nack can arrive mid-stream).
    if (sent > 0 && this.#pending.get(id) === pending) {
      pending.bytes = sent
      this.#inflightBytes += sent
    }
    if (sent < 0) {
      // Not the version planned: none of it reached the server, or it was aborted there.
      this.#retire(id)
      this.#notSent(op)
      return
    }
    // A file refused while it streamed is sent again by the nack's handler, and counted there.
    if (pending.nacked !== true && pending.contentless !== true) this.#count(pending, 'sent')
  }

  #count (pending: Pending, as: 'sent' | 'deduplicated'): void {
    const op = pending.op
    if (op.t !== 'file') return
    if (as === 'sent') this.stats.filesSent++
    else this.stats.filesDeduplicated++
    this.stats.dataBytes += op.entry.size
    pending.counted = as
  }

  /** Takes back what #count counted for a file the server refused (it may be sent again). */
  #uncount (pending: Pending): void {
    const op = pending.op
    if (op.t !== 'file' || pending.counted === undefined) return
    if (pending.counted === 'sent') this.stats.filesSent--
    else this.stats.filesDeduplicated--
    this.stats.dataBytes -= op.entry.size
    pending.counted = undefined
  }

  /**
   * A small file in one frame: read with synchronous calls (microseconds, where each async call
   * is a thread-pool round trip), compressed on this thread. -1 when the file is not the version
   * planned (nothing is sent then: the server never heard of it).
   */
  async #sendInline (id: number, path: string, entry: FileEntry): Promise<number> {
    const data = readStable(`${this.#opts.root}/${path}`, entry)
    if (data === undefined) return -1
    const pending = this.#opts.blocks?.begin(entry.hash)
    pending?.push(data)
    const { z, payload } = await encodeOnce(data)
    await this.#conn.send({ t: 'file', id, path, size: entry.size, mode: entry.mode, mtime: entry.mtime, hash: entry.hash, have: false, inline: z }, payload)
    pending?.commit()
    this.stats.literalBytes += payload.length
    return payload.length
  }

  /**
   * Streams a file: announces it (`file`), sends its content and closes it with `end`, or with
   * `abort` when the file is not the version planned (changed since the scan, or while being
   * read). With a block cache of the server's content, the content goes through the delta
   * engine: ranges the server already holds (in any file, at any offset) become `copy`
   * messages, the rest compressed `data`. When the server kept a partial upload of this content,
   * the bytes it holds are read and hashed here, not sent: the `file` says where to go on from.
   *
   * A file the scan left unhashed (its hash is pending) is hashed in this same read: its `file`
   * goes without a hash and its `end` with it. While all it read is its old version copied in
   * place, nothing is announced; a file that was only touched then costs an `attrs`, not a rebuild.
   * Returns the bytes of literal payload sent, or -1 when the file was not the version planned.
   */
  async #sendStreamed (id: number, admitted: Pending, op: FileOp): Promise<number> {
    const { path, entry } = op
    const abs = `${this.#opts.root}/${path}`
    let fh: Awaited<ReturnType<typeof open>>
    try {
      fh = await open(abs, 'r')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return -1 // gone: the rescan says so
      // Unreadable (the scan could read it, or left it to this read): a failure, not a change
      // to look at again at once, which would fail the same way in a loop. The next full scan
      // or change there tries again.
      this.#retire(id)
      admitted.contentless = true
      this.#fail(path, ErrorCode.IO, `cannot read ${path}: ${(err as Error).message}`)
      return 0
    }
    const blocks = this.#opts.blocks
    const literals = new LiteralEncoder()
    const hasher = isHashPending(entry) ? createHash('sha256') : undefined
    let sent = 0
    let announcement: PutFile | undefined
    const announce = async (): Promise<void> => {
      const message = announcement
      if (message === undefined) return
      announcement = undefined
      await this.#enqueue(Promise.resolve(), async () => { await this.#conn.send(message) })
    }
    // Copies from one base gather into one message, across calls (the deltifier cuts long
    // copies, see maxCopy): a range that continues the last one extends it.
    let copying: { fileRef: number, ranges: Array<[number, number]> } | undefined
    const flushCopies = async (): Promise<void> => {
      if (copying === undefined) return
      await announce()
      const base = blocks?.hashOf(copying.fileRef) as Buffer
      const ranges = copying.ranges
      copying = undefined
      await this.#enqueue(Promise.resolve(), async () => {
        if (admitted.nacked === true) return
        await this.#conn.send({ t: 'copy', id, base, ranges })
        this.stats.copiedBytes += ranges.reduce((n, r) => n + r[1], 0)
      })
    }
    const emit = async (ops: DeltaOp[]): Promise<void> => {
      for (const d of ops) {
        if (d.type === 'literal') {
          await flushCopies()
          await announce()
          await this.#enqueue(literals.encode(d.data), async ({ z, payload }) => {
            if (admitted.nacked === true) return // refused meanwhile: the rest is dropped, see below
            await this.#conn.send({ t: 'data', id, z }, payload)
            sent += payload.length
          })
          continue
        }
        if (copying !== undefined && copying.fileRef === d.fileRef) {
          const last = copying.ranges[copying.ranges.length - 1] as [number, number]
          if (last[0] + last[1] === d.offset) {
            last[1] += d.length
            continue
          }
          if (copying.ranges.length < MAX_RANGES_PER_COPY) {
            copying.ranges.push([d.offset, d.length])
            continue
          }
        }
        await flushCopies()
        copying = { fileRef: d.fileRef, ranges: [[d.offset, d.length]] }
      }
    }
    // Synchronous reads: from the page cache they take microseconds where each async read is a
    // thread-pool round trip. Into one buffer, reused, when the chunks are copied as they are
    // deltified; else into fresh ones (a literal may still sit in the socket's queue). Never past
    // the size planned: what was appended since is the next version's.
    let left = entry.size
    let scratch: Buffer | undefined
    const read = (length: number): Buffer | undefined => {
      if (left === 0) return undefined
      const want = Math.min(length, left)
      const chunk = scratch?.subarray(0, want) ?? Buffer.allocUnsafe(want) // scratch holds a whole CHUNK or file
      const got = readSync(fh.fd, chunk, 0, chunk.length, null)
      left -= got
      return got === 0 ? undefined : chunk.subarray(0, got)
    }
    try {
      // The scan hashed this version (size, mtime), or left it to this read; one that differs,
      // or changes while read, is not sent. The server checks the whole file's SHA-256. Except
      // a hashed file that grew (a log being written): its first `size` bytes go, and the
      // server's check against the scan's hash tells whether they were only appended to.
      const before = await fh.stat()
      const planned = before.size === entry.size && mtimeOf(before) === entry.mtime && this.#opts.isScanned?.(path, before) !== false
      const grew = hasher === undefined && before.size > entry.size && this.#stillPlanned(op)
      if (!planned && !grew) {
        if (hasher !== undefined) this.#opts.onUnstable?.(path)
        return -1
      }
      admitted.drifted = !planned
      const resumeAt = op.noResume === true || hasher !== undefined ? 0 : this.#takePartial(entry)
      // Deltified against the cache of the server's blocks, and added to it in the same read; it
      // becomes a base for later files once sent whole: the server applies operations in order.
      const upload = blocks?.upload(hasher === undefined ? entry.hash : undefined, op.noDelta !== true && entry.size >= blocks.blockSize, op.basis?.hash)
      if (upload?.keepsChunks === false) scratch = Buffer.allocUnsafe(Math.min(CHUNK, entry.size))
      let prefix: Buffer | undefined
      if (resumeAt > 0) {
        const h = createHash('sha256')
        for (let at = 0; at < resumeAt;) {
          const data = read(Math.min(CHUNK, resumeAt - at))
          if (data === undefined) return -1 // shorter than planned; nothing announced yet
          h.update(data)
          upload?.prefix(data)
          at += data.length
        }
        prefix = h.digest()
      }
      admitted.resumed = prefix !== undefined
      announcement = {
        t: 'file', id, path, size: entry.size, mode: entry.mode, mtime: entry.mtime, have: false,
        ...(hasher === undefined ? { hash: entry.hash } : {}),
        ...(prefix !== undefined ? { resume: resumeAt, prefix } : {}),
      }
      // Held back only while the file may turn out unchanged (same size as its old version).
      const holdBack = hasher !== undefined && upload !== undefined && op.basis?.size === entry.size
      if (!holdBack) await announce()
      for (let data = read(CHUNK), n = 1; data !== undefined; data = read(CHUNK), n++) {
        // Reads, deltifying and a held-back `file` resolve without the event loop: let pings,
        // acks and the socket in now and then (a few GB could otherwise outlast an idle timeout).
        if (n % YIELD_EVERY_CHUNKS === 0) await new Promise((resolve) => setImmediate(resolve))
        if (admitted.nacked === true) {
          // Refused already (a base or the partial is gone): the rest would be dropped; the
          // nack's handler sends the file again.
          await this.#settle()
          await this.#conn.send({ t: 'abort', id })
          return sent
        }
        hasher?.update(data)
        await emit(upload === undefined ? [{ type: 'literal', data }] : upload.push(data))
      }
      if (upload !== undefined) await emit(upload.end())
      const hash = hasher?.digest() ?? entry.hash
      const after = await fh.stat()
      if (announcement !== undefined && sameVersion(before, after) && op.basis !== undefined && hash.equals(op.basis.hash)) {
        // Never announced, and the same content as the server's: only the attributes changed.
        await this.#conn.send({ t: 'attrs', id, path, mode: entry.mode, mtime: entry.mtime })
        admitted.contentless = true
        this.#hashed(path, after, entry, hash)
        return 0
      }
      // Changed while read: what was read may mix versions. Unless the scan's hash is there to
      // tell (a hashed file that still holds its planned bytes: the server checks them).
      const changed = !sameVersion(before, after) && (hasher !== undefined || after.size < entry.size)
      if (!sameVersion(before, after)) {
        if (hasher !== undefined) this.#opts.onUnstable?.(path)
        else admitted.drifted = true
      }
      if (announcement !== undefined && changed) return -1 // nothing announced, nothing to abort
      await flushCopies()
      await announce() // if nothing did yet
      await this.#settle() // `sent` is complete, and `end` or `abort` follows the data
      if (changed) {
        await this.#conn.send({ t: 'abort', id })
        return -1
      }
      await this.#conn.send(hasher === undefined ? { t: 'end', id } : { t: 'end', id, hash })
      // What it became since is the next version's: looked at again (in --once too).
      if (admitted.drifted === true) this.#opts.onDirty?.(path)
      // A base for later files, unless the server refused it meanwhile (it would not hold it).
      if (admitted.nacked !== true) {
        upload?.commit(hash)
        if (hasher !== undefined) {
          admitted.hash = hash
          this.#hashed(path, after, entry, hash)
        }
      }
      this.stats.literalBytes += sent
      return sent
    } finally {
      await fh.close()
    }
  }

  /** A file the scan left unhashed was read whole as `st` says: the model and the tree learn its hash. */
  #hashed (path: string, st: Stats, entry: FileEntry, hash: Buffer): void {
    this.#opts.remote.set(path, { ...entry, hash })
    this.#opts.onHashed?.(path, st, hash)
  }

  /** The bytes the server holds of this content from an upload cut short (once), or 0. */
  #takePartial (entry: FileEntry): number {
    const key = `${entry.hash.toString('hex')}-${entry.size}`
    const have = this.#partials.get(key) ?? 0
    this.#partials.delete(key)
    return have < entry.size ? have : 0
  }

  async #onNack (pending: Pending, code: ErrorCode, message: string): Promise<void> {
    const op = pending.op
    if (op.t === 'file' && !isHashPending(op.entry) && !this.#stillPlanned(op)) {
      // A later plan already sends a newer version of this path (watching, a change can be
      // planned while this one is in flight): this one is not sent again, nor reported.
      if (!op.have) this.#opts.blocks?.forget(op.entry.hash)
      this.#uncount(pending)
      this.#opts.onDirty?.(op.path)
      return
    }
    if (op.t === 'file' && pending.resumed === true && code === 'MISSING') {
      // The partial upload is gone, or differs from our file: send it all (delta still allowed).
      this.#uncount(pending)
      const retry: FileOp = { ...op, noResume: true }
      await this.#send(retry)
      return
    }
    if (op.t === 'file' && op.have && code === 'MISSING') {
      // Our model said the server had this content; it does not (any more). Send the data.
      this.#uncount(pending)
      await this.#send({ ...op, have: false })
      return
    }
    // Whatever the cache holds under this content is not on the server (HASH_MISMATCH: the bytes
    // sent were not that content, and the sums cached for them are wrong for it).
    if (op.t === 'file' && !op.have) this.#opts.blocks?.forget(pending.hash ?? op.entry.hash)
    if (op.t === 'file' && pending.drifted === true && code === 'HASH_MISMATCH' && (await hashPrefix(`${this.#opts.root}/${op.path}`, op.entry.size))?.equals(op.entry.hash) !== true) {
      // Sent while it grew, and its planned bytes are not all still there: it changed, not only
      // grew (what a cache of stale sums would also cause is told apart by reading them again).
      // The next plan sends what is there.
      this.#uncount(pending)
      this.#notSent(op)
      return
    }
    if (op.t === 'file' && !op.have && (op as FileOp).noDelta !== true && (code === 'MISSING' || code === 'HASH_MISMATCH')) {
      // A base our cache believed in is gone or differs: the safe path sends every byte.
      this.#uncount(pending)
      const retry: FileOp = { ...op, noDelta: true }
      await this.#send(retry)
      return
    }
    if (op.t === 'file' && !op.have && code === 'HASH_MISMATCH') {
      // Sent whole and still not the content the scan hashed: the file changed without its
      // size, mtime or stat showing it in time. Look again; the next plan sends what is there.
      this.#uncount(pending)
      this.#notSent(op)
      return
    }
    this.#fail(op.t === 'move' ? op.to : op.path, code, message)
    if (op.t === 'move') this.#opts.remote.deleteTree(op.from)
  }

  /**
   * Reports an operation that did not happen. We no longer know what the server holds there:
   * the model forgets it, so the next plan sends it again.
   */
  #fail (path: string, code: ErrorCode, message: string): void {
    this.failures.push({ path, code, message })
    this.#opts.onFailure?.({ path, code, message })
    this.#opts.remote.deleteTree(path)
  }

  #retire (id: number): void {
    const p = this.#pending.get(id)
    if (p === undefined) return
    this.#pending.delete(id)
    this.#inflightBytes -= p.bytes
    this.#wake()
  }

  async #wait (): Promise<void> {
    if (this.#readError !== undefined) throw this.#readError
    await new Promise<void>((resolve) => this.#waiters.push(resolve))
    if (this.#readError !== undefined) throw this.#readError
  }

  #wake (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const w of waiters) w()
  }
}

function toMessage (op: Exclude<PlannedOp, { t: 'file' }>, id: number): Operation {
  switch (op.t) {
    case 'mkdir': return { t: 'mkdir', id, path: op.path, mode: op.mode, mtime: op.mtime }
    case 'symlink': return { t: 'symlink', id, path: op.path, target: op.target, mtime: op.mtime }
    case 'delete': return { t: 'delete', id, path: op.path }
    case 'move': return { t: 'move', id, from: op.from, to: op.to }
    case 'attrs': return { t: 'attrs', id, path: op.path, mode: op.mode, mtime: op.mtime }
  }
}

