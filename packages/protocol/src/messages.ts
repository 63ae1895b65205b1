/**
 * THE wire schema: every message fsyncd sends, and one validator per message that turns the
 * `unknown` msgpack decodes into a typed message or throws FsyncdError(MALFORMED). Code behind
 * `validateMessage` trusts what it gets. protocol/SPEC.md describes the same messages in prose.
 *
 * Field `t` names the message. Operations from client to server carry an `id` (u32, chosen by
 * the client); the server answers each with an `ack` once durable or a `nack` with an error code.
 */
import { ErrorCode, FsyncdError, isErrorCode } from './errors.js'
import { MAX_HEADER } from './frame.js'
import { checkPath, MAX_PATH_BYTES } from './paths.js'

export const PROTOCOL_VERSION = 2
export const NONCE_BYTES = 32
export const HASH_BYTES = 32
export const MAX_ENTRIES_PER_MESSAGE = 4096
export const MAX_IDS_PER_ACK = 8192
export const MAX_RANGES_PER_COPY = 4096
export const MAX_FILES_PER_BATCH = 1024
/** Content bytes of one `files` batch at most (after decompression). */
export const MAX_BATCH_BYTES = 4 * 1024 * 1024
/** One copy range at most (a bigger copy is several ranges): bounds the work one small message can ask for. */
export const MAX_COPY_LENGTH = 1 << 30
/**
 * What the items of an `entries` or `files` message may take of a frame header (65,535 bytes,
 * the rest left for the message's own fields). A sender splits a listing or a batch by the
 * item bounds below as well as by count: 4,096 entries of long paths would not fit.
 */
export const HEADER_ITEMS_BUDGET = MAX_HEADER - 1024

/** Most bytes a wire entry encodes to: array, path, kind, mode, mtime and size as msgpack at their widest, hash or target. */
export function wireEntryBound (e: WireEntry): number {
  const x = e[5]
  return 28 + Buffer.byteLength(e[0]) + (x === null ? 1 : typeof x === 'string' ? 3 + Buffer.byteLength(x) : 2 + x.length)
}

/** Most bytes a `files` item encodes to. */
export function smallFileBound (path: string): number {
  return 64 + Buffer.byteLength(path)
}

/** A file, folder or symlink as both sides describe it. Modes are permission bits (& 0o7777); mtimes are integer ms. */
export type Entry =
  | { kind: 'file', mode: number, mtime: number, size: number, hash: Buffer }
  | { kind: 'dir', mode: number, mtime: number }
  | { kind: 'link', mtime: number, target: string }

/** An entry on the wire: [path, kind 0|1|2, mode, mtime, size, hash | target | null] — arrays keep 100k-entry listings small. */
export type WireEntry = [string, number, number, number, number, Buffer | string | null]

// ---- handshake -------------------------------------------------------------------------------
export interface Hello { t: 'hello', version: number, nonce: Buffer }
export interface Challenge { t: 'challenge', version: number, nonce: Buffer, auth: 'hmac' | 'none', proof: Buffer | null }
export interface Auth { t: 'auth', proof: Buffer | null }
/**
 * Sent once the client is authenticated: the digest of the server's manifest, so a client whose
 * cached view matches needs no listing; and the uploads cut short that the server kept, each
 * [content SHA-256, size, bytes held], which an upload of that content may resume (`file.resume`).
 */
export interface Ready { t: 'ready', digest: Buffer, entries: number, partials?: PartialUpload[] }
export type PartialUpload = [Buffer, number, number]
/** At most this many partial uploads are listed in `ready`. */
export const MAX_PARTIALS = 64

// ---- listing --------------------------------------------------------------------------------
export interface List { t: 'list' }
export interface Entries { t: 'entries', entries: WireEntry[], done: boolean }

// ---- operations (client → server) ------------------------------------------------------------
export interface Mkdir { t: 'mkdir', id: number, path: string, mode: number, mtime: number }
export interface Symlink { t: 'symlink', id: number, path: string, target: string, mtime: number }
export interface Delete { t: 'delete', id: number, path: string }
export interface Move { t: 'move', id: number, from: string, to: string }
export interface Attrs { t: 'attrs', id: number, path: string, mode: number, mtime: number }
/**
 * A file with content `hash`. With `have: true` the server builds it from content it already
 * holds (nack MISSING if it does not). With `inline` set, the frame's payload is the whole
 * content (compressed as `inline` says, like `data.z`) and nothing follows: one frame per small
 * file. Otherwise `data`/`copy` messages follow, closed by `end`. With `resume` the server starts
 * from the partial upload of this content it listed in `ready`, cut to `resume` bytes, after
 * checking that they hash to `prefix` (SHA-256); what follows is the content from `resume` on.
 * A streamed upload (no `have`, `inline` or `resume`) may leave `hash` out and give it in `end`:
 * the client hashes the file in the same pass that sends it.
 */
export interface PutFile {
  t: 'file', id: number, path: string, size: number, mode: number, mtime: number, hash?: Buffer, have: boolean, inline?: Compression
  resume?: number, prefix?: Buffer
}
/**
 * Many small files in one frame: their contents back to back in the payload, compressed
 * together as `z` says (`data.z` values), so they share one compression context. Each entry is
 * [id, path, size, mode, mtime, hash] and is answered like a `file` of its own.
 */
export interface PutFiles { t: 'files', z: Compression, files: SmallFile[] }
export type SmallFile = [number, string, number, number, number, Buffer]

/** Literal bytes of file `id` in the frame's payload; `z`: see Compression. */
export interface Data { t: 'data', id: number, z: Compression }
/** How a payload is compressed: 0 raw, 1 deflate-raw, 2 brotli, 3 zstd (see payload-codec.ts). */
export type Compression = 0 | 1 | 2 | 3
const Z_MAX = 3
/** Ranges [offset, length] of server content `base` (by SHA-256) to append to file `id`: the delta path. */
export interface Copy { t: 'copy', id: number, base: Buffer, ranges: Array<[number, number]> }
/** The content of file `id` is complete; `hash` is its SHA-256 when the `file` did not say it (and only then). */
export interface End { t: 'end', id: number, hash?: Buffer }
/** The client gave up on file `id` (it changed while being read); the server discards it. */
export interface Abort { t: 'abort', id: number }
/**
 * Asks for the block sums of server content `hash` (blocks of `blockSize`), for a client whose
 * block cache lacks the old version of a file it is about to send (a cold or lost cache).
 */
export interface GetSig { t: 'getsig', id: number, hash: Buffer, blockSize: number }
export interface Bye { t: 'bye' }
export interface Ping { t: 'ping' }

// ---- answers (server → client) ---------------------------------------------------------------
export interface Ack { t: 'ack', ids: number[] }
export interface Nack { t: 'nack', id: number, code: ErrorCode, message: string }
export interface ErrorMessage { t: 'error', code: ErrorCode, message: string }
export interface Pong { t: 'pong' }
/**
 * The answer to `getsig`: when `found`, the payload is a serialized one-file BlockIndex
 * (@fsyncd/delta, file 0), split over several `sig` frames of the same id when it is bigger than
 * a frame: each but the last says `more`.
 */
export interface Sig { t: 'sig', id: number, found: boolean, more?: boolean }
/** The block size of the sums a server keeps ready (what clients ask for). */
export const SIG_BLOCK_SIZE = 1024
/** Sums bigger than this (content of ~5.6 GB at 1 KiB blocks) are not sent: the file goes without a delta. */
export const MAX_SIG_BYTES = 64 * 1024 * 1024

export type Operation = Mkdir | Symlink | Delete | Move | Attrs | PutFile | PutFiles
export type Message =
  | Hello | Challenge | Auth | Ready | List | Entries
  | Operation | Data | Copy | End | Abort | GetSig | Bye | Ping
  | Ack | Nack | ErrorMessage | Pong | Sig
export type MessageType = Message['t']

// ---- validators --------------------------------------------------------------------------------
type Obj = Record<string, unknown>

function fail (what: string): never {
  throw new FsyncdError(ErrorCode.MALFORMED, what)
}

function uint (o: Obj, key: string, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[key]
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) fail(`${String(o.t)}.${key} must be an integer in 0..${max}`)
  return v
}

/** The widest time a JavaScript Date (and so utimes) takes: ±10^8 days from 1970, in ms. */
export const MAX_MTIME = 8_640_000_000_000_000

/** An mtime in integer ms: within what the filesystem calls can set, or an operation would half happen. */
function mtime (o: Obj, key: string): number {
  const v = o[key]
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || Math.abs(v) > MAX_MTIME) fail(`${String(o.t)}.${key} must be an integer within ±${MAX_MTIME}`)
  return v
}

function bytes (o: Obj, key: string, length: number): Buffer {
  const v = o[key]
  if (!(v instanceof Uint8Array) || v.length !== length) fail(`${String(o.t)}.${key} must be ${length} bytes`)
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
}

function bytesOrNull (o: Obj, key: string, length: number): Buffer | null {
  return o[key] === null || o[key] === undefined ? null : bytes(o, key, length)
}

function text (o: Obj, key: string, maxBytes: number): string {
  const v = o[key]
  if (typeof v !== 'string' || v.length > maxBytes || Buffer.byteLength(v) > maxBytes) fail(`${String(o.t)}.${key} must be a string of at most ${maxBytes} bytes`)
  return v
}

function path (o: Obj, key: string): string {
  const p = text(o, key, MAX_PATH_BYTES)
  try {
    return checkPath(p)
  } catch (err) {
    throw new FsyncdError(ErrorCode.BAD_PATH, `${String(o.t)}.${key}: ${(err as Error).message}`)
  }
}

function linkTarget (o: Obj, key: string): string {
  const v = text(o, key, MAX_PATH_BYTES)
  if (v.length === 0 || v.includes('\0')) fail(`${String(o.t)}.${key} must be a non-empty link target without NUL`)
  return v
}

function list (o: Obj, key: string, max: number): unknown[] {
  const v = o[key]
  if (!Array.isArray(v) || v.length > max) fail(`${String(o.t)}.${key} must be an array of at most ${max} items`)
  return v
}

function bool (o: Obj, key: string): boolean {
  const v = o[key]
  if (typeof v !== 'boolean') fail(`${String(o.t)}.${key} must be a boolean`)
  return v
}

const MODE_MAX = 0o7777
const ID_MAX = 0xffffffff

function wireEntry (v: unknown): WireEntry {
  if (!Array.isArray(v) || v.length !== 6) fail('entries: an entry must be an array of 6')
  const o: Obj = { t: 'entries', path: v[0], kind: v[1], mode: v[2], mtime: v[3], size: v[4], x: v[5] }
  const p = path(o, 'path')
  const kind = uint(o, 'kind', 2)
  const mode = uint(o, 'mode', MODE_MAX)
  const time = mtime(o, 'mtime')
  const size = uint(o, 'size')
  const x = kind === 0 ? bytes(o, 'x', HASH_BYTES) : kind === 2 ? linkTarget(o, 'x') : null
  return [p, kind, mode, time, size, x]
}

function partial (v: unknown): PartialUpload {
  if (!Array.isArray(v) || v.length !== 3) fail('ready.partials: an entry must be [hash, size, have]')
  const o: Obj = { t: 'ready', hash: v[0], size: v[1], have: v[2] }
  const size = uint(o, 'size')
  return [bytes(o, 'hash', HASH_BYTES), size, uint(o, 'have', size)]
}

/** `resume` and `prefix` come together, on a streamed upload only, inside the file. */
function resumeOf (o: Obj): { resume?: number, prefix?: Buffer } {
  if (o.resume === undefined && o.prefix === undefined) return {}
  if (o.have === true || o.inline !== undefined) fail('file.resume is for a streamed upload only')
  const resume = uint(o, 'resume', uint(o, 'size'))
  if (resume === 0) fail('file.resume must be at least 1')
  return { resume, prefix: bytes(o, 'prefix', HASH_BYTES) }
}

/** `file.hash`: required unless the content streams from its first byte (then `end` gives it). */
function hashOf (o: Obj): { hash?: Buffer } {
  if (o.hash !== undefined) return { hash: bytes(o, 'hash', HASH_BYTES) }
  if (o.have === true || o.inline !== undefined || o.resume !== undefined) fail('file.hash is required unless the content streams (then end.hash gives it)')
  return {}
}

function errorCode (o: Obj): ErrorCode {
  if (!isErrorCode(o.code)) fail(`${String(o.t)}.code is not a known error code`)
  return o.code
}

const validators: { [K in MessageType]: (o: Obj) => Extract<Message, { t: K }> } = {
  hello: (o) => ({ t: 'hello', version: uint(o, 'version', 0xffff), nonce: bytes(o, 'nonce', NONCE_BYTES) }),
  challenge: (o) => {
    const auth = o.auth
    if (auth !== 'hmac' && auth !== 'none') fail('challenge.auth must be "hmac" or "none"')
    return { t: 'challenge', version: uint(o, 'version', 0xffff), nonce: bytes(o, 'nonce', NONCE_BYTES), auth, proof: bytesOrNull(o, 'proof', HASH_BYTES) }
  },
  auth: (o) => ({ t: 'auth', proof: bytesOrNull(o, 'proof', HASH_BYTES) }),
  ready: (o) => ({
    t: 'ready',
    digest: bytes(o, 'digest', HASH_BYTES),
    entries: uint(o, 'entries'),
    ...(o.partials === undefined ? {} : { partials: list(o, 'partials', MAX_PARTIALS).map(partial) }),
  }),
  list: () => ({ t: 'list' }),
  entries: (o) => ({ t: 'entries', entries: list(o, 'entries', MAX_ENTRIES_PER_MESSAGE).map(wireEntry), done: bool(o, 'done') }),
  mkdir: (o) => ({ t: 'mkdir', id: uint(o, 'id', ID_MAX), path: path(o, 'path'), mode: uint(o, 'mode', MODE_MAX), mtime: mtime(o, 'mtime') }),
  symlink: (o) => ({ t: 'symlink', id: uint(o, 'id', ID_MAX), path: path(o, 'path'), target: linkTarget(o, 'target'), mtime: mtime(o, 'mtime') }),
  delete: (o) => ({ t: 'delete', id: uint(o, 'id', ID_MAX), path: path(o, 'path') }),
  move: (o) => ({ t: 'move', id: uint(o, 'id', ID_MAX), from: path(o, 'from'), to: path(o, 'to') }),
  attrs: (o) => ({ t: 'attrs', id: uint(o, 'id', ID_MAX), path: path(o, 'path'), mode: uint(o, 'mode', MODE_MAX), mtime: mtime(o, 'mtime') }),
  file: (o) => ({
    t: 'file',
    id: uint(o, 'id', ID_MAX),
    path: path(o, 'path'),
    size: uint(o, 'size'),
    mode: uint(o, 'mode', MODE_MAX),
    mtime: mtime(o, 'mtime'),
    ...hashOf(o),
    have: o.have === undefined ? false : bool(o, 'have'),
    ...(o.inline === undefined ? {} : { inline: uint(o, 'inline', Z_MAX) as Compression }),
    ...resumeOf(o),
  }),
  files: (o) => {
    const files = list(o, 'files', MAX_FILES_PER_BATCH).map((v): SmallFile => {
      if (!Array.isArray(v) || v.length !== 6) fail('files: an entry must be [id, path, size, mode, mtime, hash]')
      const f: Obj = { t: 'files', id: v[0], path: v[1], size: v[2], mode: v[3], mtime: v[4], hash: v[5] }
      return [uint(f, 'id', ID_MAX), path(f, 'path'), uint(f, 'size', MAX_BATCH_BYTES), uint(f, 'mode', MODE_MAX), mtime(f, 'mtime'), bytes(f, 'hash', HASH_BYTES)]
    })
    if (files.reduce((n, f) => n + f[2], 0) > MAX_BATCH_BYTES) fail(`files: more than ${MAX_BATCH_BYTES} bytes of content`)
    return { t: 'files', z: uint(o, 'z', Z_MAX) as Compression, files }
  },
  data: (o) => ({ t: 'data', id: uint(o, 'id', ID_MAX), z: o.z === undefined ? 0 : uint(o, 'z', Z_MAX) as Compression }),
  copy: (o) => ({
    t: 'copy',
    id: uint(o, 'id', ID_MAX),
    base: bytes(o, 'base', HASH_BYTES),
    ranges: list(o, 'ranges', MAX_RANGES_PER_COPY).map((r) => {
      if (!Array.isArray(r) || r.length !== 2) fail('copy.ranges: a range must be [offset, length]')
      const ro: Obj = { t: 'copy', offset: r[0], length: r[1] }
      return [uint(ro, 'offset'), uint(ro, 'length', MAX_COPY_LENGTH)] as [number, number]
    }),
  }),
  end: (o) => ({ t: 'end', id: uint(o, 'id', ID_MAX), ...(o.hash === undefined ? {} : { hash: bytes(o, 'hash', HASH_BYTES) }) }),
  abort: (o) => ({ t: 'abort', id: uint(o, 'id', ID_MAX) }),
  getsig: (o) => ({ t: 'getsig', id: uint(o, 'id', ID_MAX), hash: bytes(o, 'hash', HASH_BYTES), blockSize: uint(o, 'blockSize', 65536) }),
  sig: (o) => ({ t: 'sig', id: uint(o, 'id', ID_MAX), found: bool(o, 'found'), ...(o.more === undefined ? {} : { more: bool(o, 'more') }) }),
  bye: () => ({ t: 'bye' }),
  ping: () => ({ t: 'ping' }),
  ack: (o) => ({ t: 'ack', ids: list(o, 'ids', MAX_IDS_PER_ACK).map((id) => uint({ t: 'ack', id }, 'id', ID_MAX)) }),
  nack: (o) => ({ t: 'nack', id: uint(o, 'id', ID_MAX), code: errorCode(o), message: text(o, 'message', 4096) }),
  error: (o) => ({ t: 'error', code: errorCode(o), message: text(o, 'message', 4096) }),
  pong: () => ({ t: 'pong' }),
}

/** Turns a decoded msgpack value into a typed message, or throws FsyncdError (MALFORMED or BAD_PATH). */
export function validateMessage (value: unknown): Message {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) fail('a message must be a map')
  const o = value as Obj
  const type = o.t
  if (typeof type !== 'string' || !Object.hasOwn(validators, type)) fail(`unknown message type ${typeof type === 'string' ? JSON.stringify(type.slice(0, 40)) : `(a ${Array.isArray(type) ? 'list' : typeof type})`}`)
  return validators[type as MessageType](o)
}

// ---- entries on the wire -----------------------------------------------------------------------
const KIND_CODE = { file: 0, dir: 1, link: 2 } as const

export function toWireEntry (path: string, e: Entry): WireEntry {
  switch (e.kind) {
    case 'file': return [path, 0, e.mode, e.mtime, e.size, e.hash]
    case 'dir': return [path, 1, e.mode, e.mtime, 0, null]
    case 'link': return [path, 2, 0, e.mtime, 0, e.target]
  }
}

export function fromWireEntry (w: WireEntry): [string, Entry] {
  const [p, kind, mode, mtime, size, x] = w
  if (kind === KIND_CODE.file) return [p, { kind: 'file', mode, mtime, size, hash: x as Buffer }]
  if (kind === KIND_CODE.dir) return [p, { kind: 'dir', mode, mtime }]
  return [p, { kind: 'link', mtime, target: x as string }]
}
