/**
 * The engine's one error class. `delta` depends on no other fsyncd package, so it cannot throw
 * the product's `FsyncdError`; the code here is stable so that a caller can map it (a bad copy
 * from a peer is a protocol violation, a bad index file is a cache to rebuild).
 */
export const DeltaErrorCode = {
  /** A copy op outside its source file, or with a negative, fractional or unsafe number. */
  BAD_COPY: 'BAD_COPY',
  /** A literal op that is empty or longer than allowed. */
  BAD_LITERAL: 'BAD_LITERAL',
  /** A copy op naming a source file the patcher does not hold. */
  UNKNOWN_SOURCE: 'UNKNOWN_SOURCE',
  /** The ops rebuild more bytes than the caller allowed. */
  TARGET_TOO_LARGE: 'TARGET_TOO_LARGE',
  /** A serialized block index that is truncated, corrupt or of another version. */
  BAD_INDEX: 'BAD_INDEX',
  /** Misuse of the API: a file added twice, a push after end, an out-of-range argument. */
  MISUSE: 'MISUSE',
} as const
export type DeltaErrorCode = (typeof DeltaErrorCode)[keyof typeof DeltaErrorCode]

export class DeltaError extends Error {
  readonly code: DeltaErrorCode
  constructor (code: DeltaErrorCode, message: string) {
    super(message)
    this.name = 'DeltaError'
    this.code = code
  }
}
