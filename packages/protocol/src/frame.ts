/**
 * Framing: every message is one frame.
 *
 *   0        4        6                 6+H               6+H+P
 *   +--------+--------+-----------------+-----------------+
 *   | len u32| H u16  | header (msgpack)| payload (raw)   |
 *   +--------+--------+-----------------+-----------------+
 *   len = 2 + H + P, big-endian.
 *
 * The header is a small msgpack map (the message); file bytes travel as the raw payload, so they
 * are never copied through the msgpack encoder. `len` is checked against the limit of the
 * connection's state before a single byte of the body is buffered.
 */
import { ErrorCode, FsyncdError } from './errors.js'

export const FRAME_PREFIX = 6
export const MAX_HEADER = 0xffff

export interface Frame {
  header: Buffer
  payload: Buffer
}

export function encodeFramePrefix (headerLength: number, payloadLength: number): Buffer {
  if (headerLength > MAX_HEADER) throw new FsyncdError(ErrorCode.FRAME_TOO_LARGE, `message header of ${headerLength} bytes exceeds ${MAX_HEADER}`)
  if (2 + headerLength + payloadLength > 0xffffffff) throw new FsyncdError(ErrorCode.FRAME_TOO_LARGE, `frame of ${payloadLength} payload bytes cannot be framed`)
  const prefix = Buffer.allocUnsafe(FRAME_PREFIX)
  prefix.writeUInt32BE(2 + headerLength + payloadLength, 0)
  prefix.writeUInt16BE(headerLength, 4)
  return prefix
}

/**
 * Incremental decoder: push socket chunks in any split, take whole frames out. Holds at most one
 * partial frame, whose size was checked against `maxFrame` first.
 */
export class FrameDecoder {
  maxFrame: number
  #chunks: Buffer[] = []
  #buffered = 0
  /** A bad prefix found after whole frames in the same chunk: those are delivered first. */
  #error: FsyncdError | undefined

  constructor (maxFrame: number) {
    this.maxFrame = maxFrame
  }

  /** The error found after the frames the last `push` returned; the stream is dead past them. */
  get error (): FsyncdError | undefined {
    return this.#error
  }

  /** Bytes held that do not yet form a whole frame. */
  get buffered (): number {
    return this.#buffered
  }

  push (chunk: Buffer): Frame[] {
    if (this.#error !== undefined) throw this.#error
    if (chunk.length > 0) {
      this.#chunks.push(chunk)
      this.#buffered += chunk.length
    }
    const frames: Frame[] = []
    for (;;) {
      if (this.#buffered < FRAME_PREFIX) break
      const head = this.#peek(FRAME_PREFIX)
      const len = head.readUInt32BE(0)
      const headerLength = head.readUInt16BE(4)
      let problem: FsyncdError | undefined
      if (looksLikeTls(head)) {
        problem = new FsyncdError(ErrorCode.AUTH, 'the peer speaks TLS and this side does not: give both sides the token and drop --insecure, or pass --insecure to both')
      } else if (len - 2 > this.maxFrame) {
        problem = new FsyncdError(ErrorCode.FRAME_TOO_LARGE, `frame of ${len - 2} bytes exceeds the limit of ${this.maxFrame}`)
      } else if (len < 2 + headerLength || headerLength === 0) {
        problem = new FsyncdError(ErrorCode.MALFORMED, `frame length ${len} does not hold its header of ${headerLength} bytes`)
      }
      if (problem !== undefined) {
        if (frames.length === 0) throw problem
        this.#error = problem
        this.#chunks = []
        this.#buffered = 0
        break
      }
      if (this.#buffered < 4 + len) break
      const body = this.#take(4 + len).subarray(FRAME_PREFIX)
      frames.push({ header: body.subarray(0, headerLength), payload: body.subarray(headerLength) })
    }
    return frames
  }

  /** Call at end of stream: a frame cut short is an error, not a silent loss. */
  end (): void {
    if (this.#error !== undefined) throw this.#error
    if (this.#buffered > 0) {
      throw new FsyncdError(ErrorCode.CLOSED, `connection closed inside a frame (${this.#buffered} bytes pending)`)
    }
  }

  #peek (n: number): Buffer {
    const first = this.#chunks[0] as Buffer
    if (first.length >= n) return first
    this.#chunks = [Buffer.concat(this.#chunks)]
    return this.#chunks[0] as Buffer
  }

  #take (n: number): Buffer {
    let out: Buffer
    const first = this.#chunks[0] as Buffer
    if (first.length >= n) {
      out = first.subarray(0, n)
      if (first.length === n) this.#chunks.shift()
      else this.#chunks[0] = first.subarray(n)
    } else {
      out = Buffer.allocUnsafe(n)
      let filled = 0
      while (filled < n) {
        const c = this.#chunks[0] as Buffer
        const take = Math.min(c.length, n - filled)
        c.copy(out, filled, 0, take)
        filled += take
        if (take === c.length) this.#chunks.shift()
        else this.#chunks[0] = c.subarray(take)
      }
    }
    this.#buffered -= n
    return out
  }
}

/**
 * A TLS record (handshake 0x16 or alert 0x15, version 3.x) where a frame should start: its length
 * prefix would claim over 350 MB, beyond any frame limit, so no real frame is mistaken for it.
 */
function looksLikeTls (head: Buffer): boolean {
  return (head[0] === 0x16 || head[0] === 0x15) && head[1] === 0x03
}
