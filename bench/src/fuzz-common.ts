/**
 * What the wire fuzz's modules share: the protocol module's type (the frozen build is imported at
 * run time), the known issues it reports, a layer's result, and the reporting helpers.
 */
import type * as ProtocolModule from '@fsyncd/protocol'

export type Protocol = typeof ProtocolModule

/**
 * Issues found by this fuzz and reported, not yet fixed, each with a reproduction in bench/repro/
 * (exit 1 while the bug is there). A listed issue is counted rather than failed, and the live layer
 * steers around it (see `tolerated`); `--fuzz-strict` does neither. Delete an entry once its fix is
 * in: the fuzz then sends its triggers and fails on it again. Empty: all that the fuzz found so far
 * is fixed (FIXED_ISSUES).
 */
export const KNOWN_ISSUES: Readonly<Record<string, string>> = {}

/**
 * Found by this fuzz and fixed since; the fuzz fails on them again if they come back, and their
 * reproductions in bench/repro/<name>.mjs stay as regression checks.
 */
export const FIXED_ISSUES: Readonly<Record<string, { fixedIn: string, what: string }>> = {
  'header-limit': { fixedIn: '9fb5767', what: 'a valid `entries` message (up to 4096 entries) or `files` batch (up to 1024 files) could exceed the 65,535-byte header limit: a server of ~1,500 files could not be listed by a client without a cached view, and a sync of ~1,100 small files with ~20-byte paths failed' },
  'mtime-range': { fixedIn: '6fea41a', what: '`mkdir`, `attrs` and `symlink` with an mtime beyond ±8.64e15 ms (JavaScript Date\'s range; valid on the wire) are applied in part before the nack IO: the folder stays on disk unlisted by the server (a later push never removes it), the mode is changed behind the manifest\'s back, a temp symlink is left in .fsyncd/tmp (repro: bench/repro/mtime-range.mjs)' },
  'deep-t': { fixedIn: '6fea41a', what: 'a message whose `t` is a deeply nested array (`{t: [[[…]]]}`, ~3,000 levels: a 3 KB header after authentication) makes decodeMessage throw a RangeError (stack overflow in `String(type)` of validateMessage\'s error message) instead of FsyncdError(MALFORMED); the server survives it but answers `error IO` (repro: bench/repro/deep-t.mjs)' },
  'small-chunks': { fixedIn: '6fea41a', what: 'FrameDecoder keeps one Buffer per received chunk and #take is quadratic in their number (Array.shift on a large array): an authenticated peer (any local process without a token) sending a 4 MiB frame one byte per TCP segment costs the server ~70–200 bytes of heap per byte held (hundreds of MiB per connection) and blocks its event loop for everyone when the frame completes (8 to 71 s for a 1 MB frame in our runs, depending on how many segments arrive apart) (repro: bench/repro/small-chunks.mjs)' },
  'files-leak': { fixedIn: '6fea41a', what: 'a `files` batch that fails while its temp files are being created side by side (an id named twice or already open: UNEXPECTED; or a nack for one of its paths meeting a connection the client already closed) ends the session before the other creations finish: the session\'s cleanup misses them, so each such batch leaks its open descriptors and temp files in .fsyncd/tmp until the server restarts (10 batches of 8: 70 descriptors, 70 files); any client can exhaust the server\'s descriptors (repro: bench/repro/files-leak.mjs)' },
  'link-race': { fixedIn: '6fea41a', what: 'two sessions on one server (one client with two connections will do) race a folder against a symlink to a folder outside DEST: the store checks `p` (lstat, or its cache of safe folders) and acts on `p/x` later, so a symlink renamed over `p` in between sends the mkdir, upload or symlink outside DEST; observed within milliseconds. The same races leave temp symlinks in .fsyncd/tmp when the rename fails (repro: bench/repro/link-race.mjs)' },
}

/** The name of an issue in KNOWN_ISSUES (or one that was: see tolerated). */
export type KnownIssue = string

/** Whether the fuzz goes easy on `issue`: it is still listed, and the run is not strict. */
export function tolerated (issue: KnownIssue, strict: boolean): boolean {
  return !strict && Object.hasOwn(KNOWN_ISSUES, issue)
}

export interface LayerResult {
  layer: string
  cases: number
  failures: number
  ms: number
  /** Server peak RSS during the layer (live layer only). */
  maxRss?: number | undefined
  notes: string[]
  stats: Record<string, unknown>
}

export interface FuzzResult {
  seed: number
  strict: boolean
  layers: LayerResult[]
  /** One line per failed invariant (capped), each naming its seed and case. */
  failures: string[]
  /** Known issues the run ran into (counted) or steered around (live layer), by key. */
  known: Partial<Record<KnownIssue, number>>
}

// ---- reporting helpers-------------------------------------

/** A stable text of a value: sorted keys, bytes as hex (-0 is 0, as msgpack integers have no -0). Compares decoded messages with originals. */
export function canon (v: unknown): string {
  if (v instanceof Uint8Array) return `<${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}>`
  if (Array.isArray(v)) return `[${v.map(canon).join(',')}]`
  if (v !== null && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canon((v as Record<string, unknown>)[k])}`).join(',')}}`
  return v === undefined ? 'undefined' : JSON.stringify(v) ?? String(v)
}

/** What an exception is, for a failure line. */
export function describe (err: unknown): string {
  if (err instanceof Error) return `${err.constructor.name}${(err as { code?: unknown }).code !== undefined ? `(${String((err as { code?: unknown }).code)})` : ''}: ${err.message.slice(0, 160)}`
  return `non-Error ${typeof err}: ${String(err).slice(0, 80)}`
}

export function hexHead (b: Buffer, max = 256): string {
  return b.length <= max ? b.toString('hex') : `${b.subarray(0, max).toString('hex')}… (${b.length} bytes)`
}

/** Failure lines are capped; the count is not. */
export class Failures {
  readonly lines: string[] = []
  count = 0
  constructor (readonly cap = 20) {}
  add (line: string): void {
    this.count++
    if (this.lines.length < this.cap) this.lines.push(line)
  }
}
