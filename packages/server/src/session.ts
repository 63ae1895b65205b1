/**
 * One client connection: handshake, then a dispatch loop that applies operations in the order
 * they arrive and acknowledges them in groups once `Store.flush()` made them durable. Messages
 * that fit the state but fail to apply (a bad path, a missing base, a full disk) are answered
 * with a `nack` and the session goes on; a protocol violation ends this connection only.
 */
import type { Logger } from 'pino'
import {
  type Compression, type Connection, decompress, MAX_DECODED, ErrorCode, PeerError, MAX_FILES_PER_BATCH, FsyncdError, MAX_ENTRIES_PER_MESSAGE, MAX_FRAME, type Message,
  type PutFile, serverHandshake, toWireEntry, codeOfSystemError, MAX_IDS_PER_ACK, truncateUtf8, type WireEntry, wireEntryBound, HEADER_ITEMS_BUDGET, MAX_SIG_BYTES,
} from '@fsyncd/protocol'
import type { History, HistoryRecord } from './history.js'
import type { IncomingFile } from './incoming-file.js'
import type { FileMeta, Store } from './store.js'

/** Group commit bounds: flush at least this often even when the client keeps the pipe full. */
const FLUSH_EVERY_OPS = 256
const FLUSH_EVERY_BYTES = 64 * 1024 * 1024
/** Files open at once on one connection: a `files` batch opens all of its own. */
const MAX_OPEN_FILES = MAX_FILES_PER_BATCH + 64

interface Upload {
  op: PutFile
  file: IncomingFile | undefined
  failed: boolean
}

export interface SessionStats {
  ops: number
  bytesIn: number
  bytesOut: number
}

export class Session {
  readonly #conn: Connection
  readonly #store: Store
  readonly #log: Logger
  readonly #token: string | undefined
  readonly #uploads = new Map<number, Upload>()
  #pendingAcks: number[] = []
  /** Files committed but not yet renamed into place: answered (ack or nack) at the next flush. */
  #installing: Array<{ id: number, done: Promise<void> }> = []
  #bytesSinceFlush = 0
  readonly stats: SessionStats = { ops: 0, bytesIn: 0, bytesOut: 0 }

  readonly #history: History | undefined
  readonly #peer: string
  /** What each unanswered operation was, for the history once it is acknowledged. */
  readonly #records = new Map<number, Omit<HistoryRecord, 'time' | 'client'>>()

  constructor (conn: Connection, store: Store, log: Logger, token: string | undefined, opts: { history?: History, peer?: string } = {}) {
    this.#conn = conn
    this.#store = store
    this.#log = log
    this.#token = token
    this.#history = opts.history
    this.#peer = opts.peer ?? '?'
  }

  #note (id: number, record: Omit<HistoryRecord, 'time' | 'client'>): void {
    if (this.#history !== undefined) this.#records.set(id, record)
  }

  #wire (id: number, bytes: number): void {
    const r = this.#records.get(id)
    if (r !== undefined) r.wire = (r.wire ?? 0) + bytes
  }

  /** Runs the session to its end. Never throws: errors are logged and sent to the peer. */
  async run (opts: { authTimeoutMs: number, onAuthenticated?: () => boolean }): Promise<void> {
    const conn = this.#conn
    try {
      const timer = setTimeout(() => { void conn.fail(ErrorCode.TIMEOUT, 'authentication took too long') }, opts.authTimeoutMs)
      try {
        await serverHandshake(conn, this.#token)
      } finally {
        clearTimeout(timer)
      }
      if (opts.onAuthenticated?.() === false) throw new FsyncdError(ErrorCode.BUSY, 'too many clients')
      conn.maxFrame = MAX_FRAME
      this.#log.info('client authenticated')
      // Files another session committed are installed first: the digest must describe the disk.
      await this.#store.flush()
      const manifest = this.#store.manifest
      const partials = this.#store.partials.list()
      await conn.send({ t: 'ready', digest: manifest.digest(), entries: manifest.size, ...(partials.length > 0 ? { partials } : {}) })
      await this.#loop()
    } catch (err) {
      const e = err instanceof FsyncdError ? err : new FsyncdError(ErrorCode.IO, (err as Error).message, { cause: err })
      if (e.code === ErrorCode.CLOSED) this.#log.info({ err: e.message }, 'connection closed')
      else this.#log.warn({ code: e.code, err: e.message }, 'session ended with an error')
      if (e instanceof PeerError) conn.destroy() // it told us; echoing its code back says nothing
      else await conn.fail(e.code, e.message)
    } finally {
      // Uploads cut short keep what arrived (if worth it), for the next upload of that content.
      for (const u of this.#uploads.values()) {
        if (u.file === undefined || u.failed) continue
        const hash = u.op.hash
        if (hash === undefined) {
          u.file.discard() // content not named yet (hashed as it streamed): nothing to resume
          continue
        }
        await this.#store.partials.keep(u.file, hash, u.op.size).catch((err: unknown) => {
          u.file?.discard()
          this.#log.warn({ path: u.op.path, err: (err as Error).message }, 'could not keep a partial upload')
        })
      }
      this.#uploads.clear()
      // Files this session committed (complete and verified) still go in, unanswered: the
      // client will see them in the server's listing next time.
      await this.#store.flush().catch((err: unknown) => this.#log.warn({ err: (err as Error).message }, 'flush after the session failed'))
      this.stats.bytesIn = conn.bytesIn
      this.stats.bytesOut = conn.bytesOut
    }
  }

  async #loop (): Promise<void> {
    const conn = this.#conn
    for (;;) {
      // Nothing more waiting: make what we did durable and say so before blocking on the socket.
      if (!conn.hasQueued && (this.#pendingAcks.length > 0 || this.#installing.length > 0)) await this.#flush()
      const item = await conn.next()
      if (item === undefined) {
        await this.#flush()
        return
      }
      const { msg, payload } = item
      if (msg.t !== 'ping') this.#store.sums.busy()
      if (msg.t === 'bye') {
        await this.#flush()
        this.#log.info('client said bye')
        conn.close()
        return
      }
      await this.#dispatch(msg, payload)
      if (this.#pendingAcks.length + this.#installing.length >= FLUSH_EVERY_OPS || this.#bytesSinceFlush >= FLUSH_EVERY_BYTES) await this.#flush()
    }
  }

  async #dispatch (msg: Message, payload: Buffer): Promise<void> {
    const store = this.#store
    switch (msg.t) {
      case 'ping': return await this.#conn.send({ t: 'pong' })
      case 'list': return await this.#sendListing()
      case 'getsig': {
        if (msg.blockSize < 512) throw new FsyncdError(ErrorCode.MALFORMED, `getsig: block size ${msg.blockSize} below 512`)
        const sums = await this.#store.sums.get(msg.hash, msg.blockSize)
        if (sums === undefined || sums.length > MAX_SIG_BYTES) return await this.#conn.send({ t: 'sig', id: msg.id, found: false })
        const part = MAX_FRAME - 1024
        for (let at = 0; ; at += part) {
          const more = at + part < sums.length
          await this.#conn.send({ t: 'sig', id: msg.id, found: true, ...(more ? { more } : {}) }, sums.subarray(at, at + part))
          if (!more) return
        }
      }
      case 'mkdir':
        this.#note(msg.id, { op: 'mkdir', path: msg.path })
        return await this.#apply(msg.id, () => store.mkdir(msg.path, msg.mode, msg.mtime))
      case 'symlink':
        this.#note(msg.id, { op: 'symlink', path: msg.path })
        return await this.#apply(msg.id, () => store.symlink(msg.path, msg.target, msg.mtime))
      case 'delete':
        this.#note(msg.id, { op: 'delete', path: msg.path })
        return await this.#apply(msg.id, () => store.remove(msg.path))
      case 'move':
        this.#note(msg.id, { op: 'move', path: msg.from, to: msg.to })
        return await this.#apply(msg.id, () => store.move(msg.from, msg.to))
      case 'attrs':
        this.#note(msg.id, { op: 'attrs', path: msg.path })
        return await this.#apply(msg.id, () => store.setAttrs(msg.path, msg.mode, msg.mtime))
      case 'file':
        this.#note(msg.id, { op: msg.have ? 'copy' : 'upload', path: msg.path, size: msg.size, wire: payload.length })
        if (msg.have) return await this.#apply(msg.id, () => store.fileFromContent(msg.path, { ...msg, hash: msg.hash as Buffer })) // required with `have`
        if (msg.inline !== undefined && msg.resume === undefined) {
          if (msg.hash === undefined) throw new FsyncdError(ErrorCode.MALFORMED, `inline file ${msg.id} without its hash`)
          const { id, path, size, mode, mtime, hash } = msg
          return await this.#receiveWhole([{ id, path, meta: { hash, size, mode, mtime }, data: decompress(msg.inline, payload, MAX_DECODED) }])
        }
        await this.#beginUpload(msg)
        if (msg.inline === undefined) return
        await this.#onUpload(msg.id, async (u) => this.#write(u, msg.inline as Compression, payload))
        return await this.#endUpload(msg.id)
      case 'data':
        this.#wire(msg.id, payload.length)
        return await this.#onUpload(msg.id, async (u) => this.#write(u, msg.z, payload))
      case 'files': {
        const total = msg.files.reduce((n, f) => n + f[2], 0)
        // Decoded within the common limit, then held to the sizes announced: a zstd frame's block
        // headers bound its output only roughly (see zstdBound).
        const content = decompress(msg.z, payload, MAX_DECODED)
        if (content.length !== total) throw new FsyncdError(ErrorCode.MALFORMED, `files: ${content.length} bytes of content for ${total} announced`)
        let at = 0
        return await this.#receiveWhole(msg.files.map(([id, path, size, mode, mtime, hash]) => {
          this.#note(id, { op: 'upload', path, size, wire: Math.round(payload.length * size / Math.max(total, 1)) })
          return { id, path, meta: { hash, size, mode, mtime }, data: content.subarray(at, at += size) }
        }))
      }
      case 'copy': return await this.#onUpload(msg.id, async (u) => {
        for (const [offset, length] of msg.ranges) {
          this.#bytesSinceFlush += length
          await u.copy(msg.base, offset, length)
        }
      })
      case 'end': return await this.#endUpload(msg.id, msg.hash)
      case 'abort': {
        // An id not open is not an error: the server may have nacked it while the abort was on its way.
        const u = this.#uploads.get(msg.id)
        this.#uploads.delete(msg.id)
        this.#records.delete(msg.id) // never acked: its history record would stay for the session
        u?.file?.discard()
        return
      }
      default:
        throw new FsyncdError(ErrorCode.UNEXPECTED, `"${msg.t}" is not a message a client sends after the handshake`)
    }
  }

  #write (file: IncomingFile, z: Compression, payload: Buffer): void {
    const data = decompress(z, payload, MAX_DECODED)
    this.#bytesSinceFlush += data.length
    file.write(data)
  }

  /** The manifest in `entries` messages, each within the count and the header's size. */
  async #sendListing (): Promise<void> {
    let batch: WireEntry[] = []
    let bytes = 0
    for (const [p, e] of this.#store.manifest.entries()) {
      const w = toWireEntry(p, e)
      const size = wireEntryBound(w)
      if (batch.length === MAX_ENTRIES_PER_MESSAGE || bytes + size > HEADER_ITEMS_BUDGET) {
        await this.#conn.send({ t: 'entries', entries: batch, done: false })
        batch = []
        bytes = 0
      }
      batch.push(w)
      bytes += size
    }
    await this.#conn.send({ t: 'entries', entries: batch, done: true })
  }

  async #beginUpload (op: PutFile): Promise<void> {
    if (this.#uploads.has(op.id)) throw new FsyncdError(ErrorCode.UNEXPECTED, `file id ${op.id} is already open`)
    if (this.#uploads.size >= MAX_OPEN_FILES) throw new FsyncdError(ErrorCode.UNEXPECTED, `more than ${MAX_OPEN_FILES} files open at once`)
    const upload: Upload = { op, file: undefined, failed: false }
    this.#uploads.set(op.id, upload)
    try {
      upload.file = await this.#store.beginFile(op.path, op)
      if (op.resume !== undefined) this.#log.info({ path: op.path, from: op.resume, size: op.size }, 'resuming a partial upload')
    } catch (err) {
      upload.failed = true
      await this.#nack(op.id, err)
    }
  }

  /**
   * Files whose content is all in this message (a `files` batch, an inline `file`): written,
   * checked and queued by the store in one go (see Store.receiveWholeFiles), answered at the
   * next flush like any upload.
   */
  async #receiveWhole (files: Array<{ id: number, path: string, meta: FileMeta, data: Buffer }>): Promise<void> {
    const ids = new Set<number>()
    for (const { id } of files) {
      if (this.#uploads.has(id) || ids.has(id)) throw new FsyncdError(ErrorCode.UNEXPECTED, `file id ${id} is already open`)
      ids.add(id)
    }
    const done = await this.#store.receiveWholeFiles(files)
    for (const [i, { id, data }] of files.entries()) {
      this.stats.ops++
      this.#bytesSinceFlush += data.length
      this.#installing.push({ id, done: done[i] as Promise<void> })
    }
  }

  /** Feeds an open upload; after a failure its remaining messages are dropped (the nack went out). */
  async #onUpload (id: number, fn: (file: IncomingFile) => Promise<void>): Promise<void> {
    const u = this.#uploads.get(id)
    if (u === undefined) throw new FsyncdError(ErrorCode.UNEXPECTED, `no open file with id ${id}`)
    if (u.failed || u.file === undefined) return
    try {
      await fn(u.file)
    } catch (err) {
      if (err instanceof FsyncdError && err.code === ErrorCode.MALFORMED) throw err
      u.failed = true
      u.file.discard()
      await this.#nack(id, err)
    }
  }

  /** `hash`: from `end`, exactly when the `file` did not give it. */
  async #endUpload (id: number, endHash?: Buffer): Promise<void> {
    const u = this.#uploads.get(id)
    if (u === undefined) throw new FsyncdError(ErrorCode.UNEXPECTED, `no open file with id ${id}`)
    if ((u.op.hash === undefined) === (endHash === undefined)) {
      throw new FsyncdError(ErrorCode.MALFORMED, u.op.hash === undefined ? `end of file ${id} without the hash its file left out` : `end.hash for file ${id}, whose file gave one`)
    }
    this.#uploads.delete(id)
    if (u.failed || u.file === undefined) return
    this.stats.ops++
    const done = this.#store.commitFile(u.file, u.op.path, { ...u.op, hash: (u.op.hash ?? endHash) as Buffer })
    done.catch(() => {}) // answered at the next flush
    this.#installing.push({ id, done })
  }

  async #apply (id: number, fn: () => Promise<void>): Promise<void> {
    this.stats.ops++
    try {
      await fn()
      this.#pendingAcks.push(id)
    } catch (err) {
      await this.#nack(id, err)
    }
  }

  async #nack (id: number, err: unknown): Promise<void> {
    this.#records.delete(id)
    const code = err instanceof FsyncdError ? err.code : codeOfSystemError(err)
    const message = (err as Error).message
    this.#log.warn({ id, code, err: message }, 'operation failed')
    await this.#conn.send({ t: 'nack', id, code, message: truncateUtf8(message, 4000) })
  }

  async #flush (): Promise<void> {
    if (this.#pendingAcks.length === 0 && this.#installing.length === 0 && this.#bytesSinceFlush === 0) return
    await this.#store.flush() // installs the queued files, then fsyncs every changed folder
    const installing = this.#installing
    this.#installing = []
    for (const { id, done } of installing) {
      try {
        await done
        this.#pendingAcks.push(id)
      } catch (err) {
        await this.#nack(id, err)
      }
    }
    const ids = this.#pendingAcks
    this.#pendingAcks = []
    this.#bytesSinceFlush = 0
    if (this.#history !== undefined) {
      const time = new Date().toISOString()
      const records: HistoryRecord[] = []
      for (const id of ids) {
        const r = this.#records.get(id)
        if (r === undefined) continue
        this.#records.delete(id)
        const saved = r.size !== undefined ? Math.max(0, r.size - (r.wire ?? 0)) : undefined
        records.push({ time, client: this.#peer, ...r, ...(saved !== undefined ? { saved } : {}) })
      }
      void this.#history.append(records)
    }
    for (let i = 0; i < ids.length; i += MAX_IDS_PER_ACK) {
      await this.#conn.send({ t: 'ack', ids: ids.slice(i, i + MAX_IDS_PER_ACK) })
    }
    this.#store.scheduleIndexSave()
  }
}
