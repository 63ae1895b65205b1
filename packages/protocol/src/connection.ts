/**
 * One peer over one stream: typed messages in and out, framed, validated, with backpressure both
 * ways (after holepunch's framed-stream). Reading pauses the socket while `maxQueued` frames, or
 * `maxQueuedBytes` of payload, wait for the consumer; `send` resolves once the socket accepted the bytes (after 'drain' if it was
 * full), so a sender that awaits it never buffers more than the socket's high-water mark.
 */
import { once } from 'node:events'
import type { Duplex } from 'node:stream'
import { Packr } from 'msgpackr'
import { ErrorCode, FsyncdError, PeerError, truncateUtf8 } from './errors.js'
import { encodeFramePrefix, type Frame, FrameDecoder } from './frame.js'
import { type Message, validateMessage } from './messages.js'

/** Pre-auth frames are tiny: a stranger cannot make us buffer more than this. */
export const PRE_AUTH_MAX_FRAME = 1024
/** After auth: a message header plus at most one data chunk. */
export const MAX_FRAME = 4 * 1024 * 1024

/**
 * Payload bytes read ahead of the consumer before reading pauses. Frames alone (64 of up to
 * 4 MiB) let a peer park 256 MiB in a busy server's memory, and an upload refused by a slow
 * check ran that far ahead of the refusal.
 */
const MAX_QUEUED_BYTES = 8 * 1024 * 1024

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, variableMapSize: true, int64AsType: 'number' })

export interface Incoming {
  msg: Message
  payload: Buffer
}

export function encodeMessage (msg: Message): Buffer {
  return packr.pack(msg)
}

export function decodeMessage (header: Buffer): Message {
  let value: unknown
  try {
    value = packr.unpack(header)
  } catch (err) {
    throw new FsyncdError(ErrorCode.MALFORMED, `undecodable message: ${(err as Error).message}`)
  }
  return validateMessage(value)
}

export class Connection {
  readonly socket: Duplex
  /** Bytes written and read, frame overhead included (what a proxy would count, minus TLS/TCP). */
  bytesOut = 0
  bytesIn = 0
  readonly #decoder: FrameDecoder
  readonly #queue: Incoming[] = []
  readonly #maxQueued: number
  readonly #maxQueuedBytes: number
  #queuedBytes = 0
  #error: Error | undefined
  #ended = false
  #waiters: Array<() => void> = []
  #closed = false

  constructor (socket: Duplex, opts: { maxFrame?: number, maxQueued?: number, maxQueuedBytes?: number } = {}) {
    this.socket = socket
    this.#decoder = new FrameDecoder(opts.maxFrame ?? PRE_AUTH_MAX_FRAME)
    this.#maxQueued = opts.maxQueued ?? 64
    this.#maxQueuedBytes = opts.maxQueuedBytes ?? MAX_QUEUED_BYTES
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    socket.on('end', () => this.#onEnd())
    socket.on('close', () => this.#onEnd())
    socket.on('error', (err) => this.#fail(err))
  }

  /** True when messages are waiting to be read: the peer has already sent more. */
  get hasQueued (): boolean {
    return this.#queue.length > 0
  }

  get maxFrame (): number {
    return this.#decoder.maxFrame
  }

  set maxFrame (n: number) {
    this.#decoder.maxFrame = n
  }

  /** Sends one message (and its raw payload). Resolves when the socket has room again. */
  async send (msg: Message, payload?: Uint8Array): Promise<void> {
    if (this.#closed || this.socket.destroyed) throw this.#error ?? new FsyncdError(ErrorCode.CLOSED, 'connection is closed')
    const header = encodeMessage(msg)
    const payloadLength = payload?.length ?? 0
    if (2 + header.length + payloadLength > MAX_FRAME) throw new FsyncdError(ErrorCode.FRAME_TOO_LARGE, `refusing to send a ${payloadLength}-byte "${msg.t}" frame over ${MAX_FRAME}`)
    const prefix = encodeFramePrefix(header.length, payloadLength)
    this.bytesOut += prefix.length + header.length + payloadLength
    this.socket.cork()
    this.socket.write(prefix)
    let room: boolean
    if (payload !== undefined && payloadLength > 0) {
      this.socket.write(header)
      room = this.socket.write(payload)
    } else {
      room = this.socket.write(header)
    }
    this.socket.uncork()
    if (!room && !this.socket.destroyed) await this.#drained()
  }

  async #drained (): Promise<void> {
    const ac = new AbortController()
    const onClose = (): void => ac.abort()
    this.socket.once('close', onClose)
    try {
      await once(this.socket, 'drain', { signal: ac.signal })
    } catch {
      throw this.#error ?? new FsyncdError(ErrorCode.CLOSED, 'connection closed while sending')
    } finally {
      this.socket.off('close', onClose)
    }
  }

  /** The next message, or undefined at a clean end of stream. Throws on a broken or hostile stream. */
  async next (): Promise<Incoming | undefined> {
    for (;;) {
      const item = this.#queue.shift()
      if (item !== undefined) {
        this.#queuedBytes -= item.payload.length
        if (this.#queue.length < this.#maxQueued / 2 && this.#queuedBytes < this.#maxQueuedBytes / 2 && this.socket.isPaused() && !this.#ended) this.socket.resume()
        return item
      }
      if (this.#error !== undefined) throw this.#error
      if (this.#ended) return undefined
      await new Promise<void>((resolve) => { this.#waiters.push(resolve) })
    }
  }

  /** Reads the next message and checks its type. */
  async expect<T extends Message['t']> (type: T): Promise<Extract<Message, { t: T }>> {
    const item = await this.next()
    if (item === undefined) throw new FsyncdError(ErrorCode.CLOSED, `connection closed while waiting for "${type}"`)
    if (item.msg.t === 'error') throw new PeerError(item.msg.code, `peer: ${item.msg.message}`)
    if (item.msg.t !== type) throw new FsyncdError(ErrorCode.UNEXPECTED, `expected "${type}", got "${item.msg.t}"`)
    return item.msg as Extract<Message, { t: T }>
  }

  async * [Symbol.asyncIterator] (): AsyncIterator<Incoming> {
    for (;;) {
      const item = await this.next()
      if (item === undefined) return
      yield item
    }
  }

  /** Sends an error message (best effort) and ends the connection. */
  async fail (code: ErrorCode, message: string): Promise<void> {
    try {
      if (!this.socket.destroyed && this.socket.writable) {
        // Short enough to fit even a pre-auth frame limit at the peer.
        const header = encodeMessage({ t: 'error', code, message: truncateUtf8(message, 800) })
        this.socket.write(Buffer.concat([encodeFramePrefix(header.length, 0), header]))
      }
    } finally {
      this.close()
    }
  }

  /** Graceful: flushes what was written, then ends. */
  close (): void {
    if (this.#closed) return
    this.#closed = true
    this.socket.end()
    // A peer that never reads must not keep the socket alive forever.
    setTimeout(() => this.socket.destroy(), 5000).unref()
  }

  destroy (err?: Error): void {
    this.#closed = true
    if (err !== undefined && this.#error === undefined) this.#error = err
    this.socket.destroy()
    this.#notify()
  }

  #onData (chunk: Buffer): void {
    if (this.#error !== undefined) return
    let frames: Frame[]
    try {
      frames = this.#decoder.push(chunk)
      for (const f of frames) {
        const msg = decodeMessage(f.header)
        this.bytesIn += 6 + f.header.length + f.payload.length
        this.#queue.push({ msg, payload: f.payload })
        this.#queuedBytes += f.payload.length
      }
      if (this.#decoder.error !== undefined) throw this.#decoder.error
    } catch (err) {
      // A broken stream: stop reading it; the owner reports the error and closes.
      this.socket.pause()
      this.#fail(err as Error)
      return
    }
    if (this.#queue.length >= this.#maxQueued || this.#queuedBytes >= this.#maxQueuedBytes) this.socket.pause()
    this.#notify()
  }

  #onEnd (): void {
    if (this.#ended) return
    this.#ended = true
    try {
      this.#decoder.end()
    } catch (err) {
      this.#error ??= err as Error
    }
    this.#notify()
  }

  #fail (err: Error): void {
    this.#error ??= err
    this.#notify()
  }

  #notify (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }
}
