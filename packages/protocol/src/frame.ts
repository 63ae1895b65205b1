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
 * partial frame, whose size was checked against `maxFrame` first. A frame that arrives within
 * one chunk is a view of it; one that spans chunks is copied once into a buffer of its exact
 * size, so a peer dribbling a byte per segment costs a byte per byte, never more.
 */
export class FrameDecoder {
  maxFrame: number
  /** Bytes of a prefix not yet complete (fewer than FRAME_PREFIX). */
  #head: Buffer = Buffer.alloc(0)
  /** The frame being filled (prefix included), once its prefix was read, and how much of it is. */
  #frame: Buffer | undefined
  #filled = 0
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
    return this.#head.length + this.#filled
  }

  push (chunk: Buffer): Frame[] {
    if (this.#error !== undefined) throw this.#error
    const frames: Frame[] = []
    let at = 0
    while (at < chunk.length) {
      if (this.#frame !== undefined) {
        const n = Math.min(this.#frame.length - this.#filled, chunk.length - at)
        chunk.copy(this.#frame, this.#filled, at, at + n)
        this.#filled += n
        at += n
        if (this.#filled === this.#frame.length) {
          frames.push(split(this.#frame))
          this.#frame = undefined
          this.#filled = 0
        }
        continue
      }
      if (this.#head.length + chunk.length - at < FRAME_PREFIX) {
        this.#head = Buffer.concat([this.#head, chunk.subarray(at)])
        break
      }
      const fromHead = this.#head.length
      const head = fromHead === 0 ? chunk.subarray(at, at + FRAME_PREFIX) : Buffer.concat([this.#head, chunk.subarray(at, at + FRAME_PREFIX - fromHead)])
      const problem = this.#check(head)
      if (problem !== undefined) {
        if (frames.length === 0) throw problem
        this.#error = problem
        this.#head = Buffer.alloc(0)
        break
      }
      const total = 4 + head.readUInt32BE(0)
      if (fromHead === 0 && chunk.length - at >= total) {
        frames.push(split(chunk.subarray(at, at + total)))
        at += total
        continue
      }
      this.#frame = Buffer.allocUnsafe(total)
      head.copy(this.#frame, 0)
      this.#filled = FRAME_PREFIX
      at += FRAME_PREFIX - fromHead
      this.#head = Buffer.alloc(0)
    }
    return frames
  }

  /** Call at end of stream: a frame cut short is an error, not a silent loss. */
  end (): void {
    if (this.#error !== undefined) throw this.#error
    if (this.buffered > 0) {
      throw new FsyncdError(ErrorCode.CLOSED, `connection closed inside a frame (${this.buffered} bytes pending)`)
    }
  }

  #check (head: Buffer): FsyncdError | undefined {
    const len = head.readUInt32BE(0)
    const headerLength = head.readUInt16BE(4)
    if (looksLikeTls(head)) {
      return new FsyncdError(ErrorCode.AUTH, 'the peer speaks TLS and this side does not: give both sides the token and drop --insecure, or pass --insecure to both')
    }
    if (len - 2 > this.maxFrame) return new FsyncdError(ErrorCode.FRAME_TOO_LARGE, `frame of ${len - 2} bytes exceeds the limit of ${this.maxFrame}`)
    if (len < 2 + headerLength || headerLength === 0) return new FsyncdError(ErrorCode.MALFORMED, `frame length ${len} does not hold its header of ${headerLength} bytes`)
    return undefined
  }
}

function split (frame: Buffer): Frame {
  const headerLength = frame.readUInt16BE(4)
  return { header: frame.subarray(FRAME_PREFIX, FRAME_PREFIX + headerLength), payload: frame.subarray(FRAME_PREFIX + headerLength) }
}

/**
 * A TLS record (handshake 0x16 or alert 0x15, version 3.x) where a frame should start: its length
 * prefix would claim over 350 MB, beyond any frame limit, so no real frame is mistaken for it.
 */
function looksLikeTls (head: Buffer): boolean {
  return (head[0] === 0x16 || head[0] === 0x15) && head[1] === 0x03
}
