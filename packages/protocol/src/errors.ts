/**
 * One error class for the whole product, with stable codes. The same codes travel on the wire in
 * `error` and `nack` messages, so a client can tell "the server's disk is full" from "you sent garbage".
 */
export const ErrorCode = {
  /** Bytes that are not a valid frame or message. The connection is closed. */
  MALFORMED: 'MALFORMED',
  /** A frame longer than the limit for the connection's state. The connection is closed. */
  FRAME_TOO_LARGE: 'FRAME_TOO_LARGE',
  /** A valid message that is not allowed in the connection's current state. */
  UNEXPECTED: 'UNEXPECTED',
  /** The peer speaks a protocol version we do not. */
  VERSION: 'VERSION',
  /** Authentication failed (wrong token, or a token is required). */
  AUTH: 'AUTH',
  /** A path that is not canonical, leaves the root, or goes through a symlink. */
  BAD_PATH: 'BAD_PATH',
  /** The server has no content with the hash the client referred to. The client resends the data. */
  MISSING: 'MISSING',
  /** The rebuilt file does not hash to what the client announced. */
  HASH_MISMATCH: 'HASH_MISMATCH',
  /** The destination filesystem is full. */
  NO_SPACE: 'NO_SPACE',
  /** Any other failure to apply a change on the server. */
  IO: 'IO',
  /** A connection timed out (pre-auth deadline, idle). */
  TIMEOUT: 'TIMEOUT',
  /** The peer closed the connection before the exchange finished. */
  CLOSED: 'CLOSED',
  /** Too many connections. */
  BUSY: 'BUSY',
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

const knownCodes = new Set<string>(Object.values(ErrorCode))

export function isErrorCode (value: unknown): value is ErrorCode {
  return typeof value === 'string' && knownCodes.has(value)
}

export class FsyncdError extends Error {
  readonly code: ErrorCode
  constructor (code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'FsyncdError'
    this.code = code
  }
}

/** What the peer itself reported in an `error` message: there is nothing to answer it. */
export class PeerError extends FsyncdError {}

/** Cuts `text` to at most `maxBytes` of UTF-8 without splitting a character (wire strings are capped in bytes). */
export function truncateUtf8 (text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text
  let out = Buffer.from(text).subarray(0, maxBytes).toString()
  // A cut inside a multi-byte character decodes to U+FFFD; drop it.
  while (out.endsWith('\uFFFD') || Buffer.byteLength(out) > maxBytes) out = out.slice(0, -1)
  return out
}

/** Maps a Node.js system error from the filesystem to our code. */
export function codeOfSystemError (err: unknown): ErrorCode {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (code === 'ENOSPC' || code === 'EDQUOT') return ErrorCode.NO_SPACE
  return ErrorCode.IO
}
