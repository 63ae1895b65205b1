/**
 * Generators for the wire fuzz (fuzz.ts, fuzz-live.ts): a seeded PRNG, an independent msgpack
 * writer that can lie (duplicate keys, uint64 beyond 2^53, headers claiming huge lengths, deep
 * nesting), a random valid sample of every message type in messages.ts, and mutators of frame
 * streams, both byte-level (flips, splices, truncation, duplication) and structure-aware (a lying
 * length prefix, one field swapped for a hostile value, a header replaced by random msgpack).
 *
 * The PRNG and the msgpack writer follow packages/protocol/test/helpers/{prng,msgpack}.ts (the
 * CI-sized fuzz); the bench keeps its own copies because it builds from src/ only.
 */
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import { brotliCompressSync, constants as zlib, deflateRawSync } from 'node:zlib'
import {
  ErrorCode, HASH_BYTES, MAX_COPY_LENGTH, MAX_ENTRIES_PER_MESSAGE, MAX_FILES_PER_BATCH, MAX_FRAME, MAX_IDS_PER_ACK,
  MAX_PARTIALS, MAX_RANGES_PER_COPY, type Message, type MessageType, NONCE_BYTES, type PartialUpload, PRE_AUTH_MAX_FRAME, PROTOCOL_VERSION, type SmallFile, type WireEntry,
} from '@fsyncd/protocol'
import { Int64, pack, Pairs, Prng, Raw, splitAt } from '@fsyncd/testkit'

export { Int64, pack, Pairs, Prng, Raw, splitAt }

/** The seed of case `index` of `layer` in a run seeded `seed`: every case replays on its own. */
export function caseSeed (seed: number, layer: number, index: number): number {
  let h = (seed ^ Math.imul(layer + 1, 0x9e3779b9)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0
  h = (h ^ Math.imul(index + 1, 0xc2b2ae35)) >>> 0
  h = Math.imul(h ^ (h >>> 13), 0x27d4eb2f) >>> 0
  return (h ^ (h >>> 16)) >>> 0
}

// ---- frames ---------------------------------------------------------------------------------------

/** A frame as the diagram in frame.ts lays it out; `prefix` overrides the 6 honest bytes (a lie). */
export interface Part { header: Buffer, payload: Buffer, prefix?: Buffer }

export function prefixOf (len: number, headerLength: number): Buffer {
  const b = Buffer.alloc(6)
  b.writeUInt32BE(len >>> 0, 0)
  b.writeUInt16BE(headerLength & 0xffff, 4)
  return b
}

export function frameOf (p: Part): Buffer {
  return Buffer.concat([p.prefix ?? prefixOf(2 + p.header.length + p.payload.length, p.header.length), p.header, p.payload])
}

export function streamOf (parts: readonly Part[]): Buffer {
  return Buffer.concat(parts.map(frameOf))
}

// ---- valid samples of every message type ---------------------------------------------------------

/** What the generator may draw from: names that exist on the server, its content hashes, link targets. */
export interface GenContext {
  /** In-process: any value the schema allows (huge mtimes, 4096-entry lists). Live: values a disk takes. */
  wide: boolean
  /** Path components to build paths from (live: a handful, so operations collide). */
  names: readonly string[]
  /** Paths and content hashes the server holds (live: the seeded tree). */
  paths: readonly string[]
  hashes: readonly Buffer[]
  /** Symlink targets (live: pointing out of the destination, into the jail around it). */
  targets: readonly string[]
  /** Every generated path starts here ('' or 'w3/…': the live layer gives each case a folder of its own). */
  prefix: string
  /** The widest mtime the schema takes (its MAX_MTIME when it has one). */
  maxMtime: number
}

/** The widest valid mtime of this build of the protocol: MAX_MTIME if it exports one, else any safe integer. */
export function mtimeLimit (P: object): number {
  const m = (P as { MAX_MTIME?: unknown }).MAX_MTIME
  return typeof m === 'number' ? m : Number.MAX_SAFE_INTEGER
}

export interface Sample { msg: Message, payload: Buffer }

const WIDE_NAMES = ['a', 'b', 'c', 'f.txt', 'sub', 'x y', '日本語', '🙂', '.hidden', 'n'.repeat(255), 'é', '-', '..a', 'a.', '~']
const WIDE_TARGETS = ['t', '../x', '/absolute/target', 't'.repeat(4096), '..', '🙂/x', ' ']

export function wideContext (maxMtime: number): GenContext {
  return { wide: true, names: WIDE_NAMES, paths: [], hashes: [], targets: WIDE_TARGETS, prefix: '', maxMtime }
}

export const ALL_TYPES: readonly MessageType[] = [
  'hello', 'challenge', 'auth', 'ready', 'list', 'entries', 'mkdir', 'symlink', 'delete', 'move', 'attrs', 'file', 'files',
  'data', 'copy', 'end', 'abort', 'getsig', 'sig', 'bye', 'ping', 'ack', 'nack', 'error', 'pong',
]
const CODES = Object.values(ErrorCode)
/** Date's range is ±8.64e15 ms; a wire mtime may be any safe integer. */
export const DATE_LIMIT_MS = 8.64e15

export function randomPath (r: Prng, ctx: GenContext): string {
  if (ctx.paths.length > 0 && r.chance(0.35)) return r.pick(ctx.paths)
  const depth = ctx.wide ? r.pick([1, 1, 2, 3, 5]) : r.pick([1, 1, 2, 2, 3])
  const parts: string[] = []
  for (let i = 0; i < depth; i++) parts.push(r.pick(ctx.names))
  let p = ctx.prefix + parts.join('/')
  while (Buffer.byteLength(p) > 4096) p = p.slice(0, p.lastIndexOf('/'))
  return p
}

function mtime (r: Prng, ctx: GenContext): number {
  if (ctx.wide && r.chance(0.2)) {
    const v = r.pick([0, -1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, DATE_LIMIT_MS, DATE_LIMIT_MS + 1, 2 ** 32, -(2 ** 31)])
    return Math.max(-ctx.maxMtime, Math.min(ctx.maxMtime, v))
  }
  return 1_700_000_000_000 + r.between(-1e9, 1e9)
}

const mode = (r: Prng): number => r.chance(0.7) ? r.pick([0o644, 0o755, 0o600, 0o700]) : r.below(0o10000)
const id = (r: Prng, ctx: GenContext): number => ctx.wide && r.chance(0.2) ? r.pick([0, 0xffffffff, 0x7fffffff]) : r.below(64)
const hashOf = (b: Buffer): Buffer => createHash('sha256').update(b).digest()
const someHash = (r: Prng, ctx: GenContext): Buffer => ctx.hashes.length > 0 && r.chance(0.6) ? r.pick(ctx.hashes) : r.bytes(HASH_BYTES)

function content (r: Prng, max: number): Buffer {
  const n = r.pick([0, 1, 7, 100, 1000, max])
  // Half compressible text, half noise.
  return r.chance(0.5) ? Buffer.from('fsyncd fuzz '.repeat(Math.ceil(n / 12)).slice(0, n)) : r.bytes(n)
}

/** zstd's encoder, synchronous (the protocol package's `compress` is asynchronous). */
const zstd = new (createRequire(import.meta.url)('@toondepauw/node-zstd') as { Encoder: new (level: number) => { encodeSync: (b: Buffer) => Buffer } }).Encoder(1)

export function compress (z: 0 | 1 | 2 | 3, b: Buffer): Buffer {
  if (z === 0) return b
  if (z === 1) return deflateRawSync(b, { level: 1 })
  if (z === 3) return zstd.encodeSync(b)
  return brotliCompressSync(b, { params: { [zlib.BROTLI_PARAM_QUALITY]: 2 } })
}

function wireEntry (r: Prng, ctx: GenContext): WireEntry {
  const kind = r.below(3)
  const p = randomPath(r, ctx)
  if (kind === 0) return [p, 0, mode(r), mtime(r, ctx), r.below(1 << 20), r.bytes(HASH_BYTES)]
  if (kind === 1) return [p, 1, mode(r), mtime(r, ctx), 0, null]
  return [p, 2, 0, mtime(r, ctx), 0, r.pick(ctx.targets)]
}

/** A random valid message of type `t` (and the payload it travels with). */
export function sampleOf (r: Prng, t: MessageType, ctx: GenContext): Sample {
  const none = Buffer.alloc(0)
  const z = r.below(4) as 0 | 1 | 2 | 3
  switch (t) {
    case 'hello': return { msg: { t, version: r.chance(0.9) ? PROTOCOL_VERSION : r.pick([0, PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1, 0xffff]), nonce: r.bytes(NONCE_BYTES) }, payload: none }
    case 'challenge': {
      const auth = r.chance(0.5) ? 'hmac' : 'none'
      return { msg: { t, version: PROTOCOL_VERSION, nonce: r.bytes(NONCE_BYTES), auth, proof: auth === 'none' ? null : r.bytes(HASH_BYTES) }, payload: none }
    }
    case 'auth': return { msg: { t, proof: r.chance(0.7) ? null : r.bytes(HASH_BYTES) }, payload: none }
    case 'ready': {
      const msg: Message = { t, digest: r.bytes(HASH_BYTES), entries: r.below(1000) }
      if (r.chance(0.5)) {
        msg.partials = Array.from({ length: ctx.wide && r.chance(0.05) ? MAX_PARTIALS : r.below(4) }, (): PartialUpload => {
          const size = r.below(1 << 30)
          return [r.bytes(HASH_BYTES), size, r.below(size + 1)]
        })
      }
      return { msg, payload: none }
    }
    case 'list': case 'bye': case 'ping': case 'pong': return { msg: { t } as Message, payload: none }
    case 'entries': {
      const n = ctx.wide && r.chance(0.002) ? MAX_ENTRIES_PER_MESSAGE : r.below(6)
      return { msg: { t, entries: Array.from({ length: n }, () => wireEntry(r, ctx)), done: r.chance(0.5) }, payload: none }
    }
    case 'mkdir': return { msg: { t, id: id(r, ctx), path: randomPath(r, ctx), mode: mode(r), mtime: mtime(r, ctx) }, payload: none }
    case 'symlink': return { msg: { t, id: id(r, ctx), path: randomPath(r, ctx), target: r.pick(ctx.targets), mtime: mtime(r, ctx) }, payload: none }
    case 'delete': return { msg: { t, id: id(r, ctx), path: randomPath(r, ctx) }, payload: none }
    case 'move': return { msg: { t, id: id(r, ctx), from: randomPath(r, ctx), to: randomPath(r, ctx) }, payload: none }
    case 'attrs': return { msg: { t, id: id(r, ctx), path: randomPath(r, ctx), mode: mode(r), mtime: mtime(r, ctx) }, payload: none }
    case 'file': {
      const body = content(r, 3000)
      const honest = r.chance(0.85)
      const base = { t, id: id(r, ctx), path: randomPath(r, ctx), size: honest ? body.length : r.below(5000), mode: mode(r), mtime: mtime(r, ctx), hash: honest ? hashOf(body) : someHash(r, ctx) } as const
      if (r.chance(0.15)) return { msg: { ...base, have: true }, payload: none }
      // Resuming a partial upload: `resume` bytes kept, hashing to `prefix`, the rest follows.
      if (r.chance(0.1) && base.size > 0) return { msg: { ...base, have: false, resume: r.between(1, base.size), prefix: r.bytes(HASH_BYTES) }, payload: none }
      if (r.chance(0.6)) return { msg: { ...base, have: false, inline: z }, payload: compress(z, body) }
      return { msg: { ...base, have: false }, payload: none }
    }
    case 'files': {
      const n = ctx.wide && r.chance(0.01) ? MAX_FILES_PER_BATCH : r.below(6)
      const bodies = Array.from({ length: n }, () => content(r, 500))
      const files = bodies.map((b, i): SmallFile => [i + r.below(4), randomPath(r, ctx), b.length, mode(r), mtime(r, ctx), r.chance(0.9) ? hashOf(b) : r.bytes(HASH_BYTES)])
      return { msg: { t, z, files }, payload: compress(z, Buffer.concat(bodies)) }
    }
    case 'data': return { msg: { t, id: id(r, ctx), z }, payload: compress(z, content(r, 4000)) }
    case 'copy': {
      const n = ctx.wide && r.chance(0.002) ? MAX_RANGES_PER_COPY : r.below(5)
      const ranges = Array.from({ length: n }, (): [number, number] => [r.below(70_000), ctx.wide && r.chance(0.1) ? MAX_COPY_LENGTH : r.below(70_000)])
      return { msg: { t, id: id(r, ctx), base: someHash(r, ctx), ranges }, payload: none }
    }
    case 'end': case 'abort': return { msg: { t, id: id(r, ctx) }, payload: none }
    case 'getsig': return { msg: { t, id: id(r, ctx), hash: someHash(r, ctx), blockSize: r.pick([512, 1024, 4096, 65536, r.between(1, 65536)]) }, payload: none }
    case 'sig': {
      const found = r.chance(0.5)
      return { msg: { t, id: id(r, ctx), found }, payload: found ? r.bytes(r.below(2000)) : none }
    }
    case 'ack': {
      const n = ctx.wide && r.chance(0.002) ? MAX_IDS_PER_ACK : r.below(10)
      return { msg: { t, ids: Array.from({ length: n }, () => id(r, ctx)) }, payload: none }
    }
    case 'nack': return { msg: { t, id: id(r, ctx), code: r.pick(CODES), message: r.pick(['', 'no', 'é'.repeat(2048)]) }, payload: none }
    case 'error': return { msg: { t, code: r.pick(CODES), message: r.pick(['', 'bad', 'x'.repeat(4096)]) }, payload: none }
  }
}

export function randomSample (r: Prng, ctx: GenContext): Sample {
  return sampleOf(r, r.pick(ALL_TYPES), ctx)
}

// ---- hostile values --------------------------------------------------------------------------------

const STRINGS = ['', 'ping', 'PING', '__proto__', 'constructor', 'toString', '..', '.', '/etc/passwd', 'a//b', 'a/./b', 'a\\b', 'a\0b',
  '.fsyncd', '.FSYNCD/x', 'a/', '/', 'x'.repeat(4097), 'n'.repeat(256), '\uFFFD', '\uD800', 'é'.repeat(2049)]

/** A header claiming far more than follows: msgpack's length fields are where decoders over-allocate. */
function claim (r: Prng): Raw {
  const big = r.pick([0xffffffff, 0x7fffffff, 0x10000000, 0x10000, 70000])
  const b32 = (code: number): Buffer => { const b = Buffer.alloc(5); b[0] = code; b.writeUInt32BE(big, 1); return b }
  const head = r.pick([
    b32(0xdd), b32(0xdf), b32(0xdb), b32(0xc6),
    Buffer.from([0xdc, 0xff, 0xff]), Buffer.from([0xde, 0xff, 0xff]), Buffer.from([0xda, 0xff, 0xff]), Buffer.from([0xc5, 0xff, 0xff]),
    Buffer.concat([b32(0xc9), Buffer.from([r.u32() & 0xff])]), Buffer.from([0xc8, 0xff, 0xff, 0x01]),
  ])
  return new Raw(Buffer.concat([head, r.bytes(r.below(8))]))
}

/** Arrays or maps nested `depth` deep: recursion is where decoders blow their stack. */
function deep (r: Prng, depth: number): Raw {
  const unit = r.pick([Buffer.from([0x91]), Buffer.from([0x81, 0xa1, 0x74]), Buffer.from([0x81, 0x00])])
  return new Raw(Buffer.concat([Buffer.alloc(unit.length * depth).fill(unit), Buffer.from([0xc0])]))
}

/** A value of a wrong type or size for any field. */
export function hostileValue (r: Prng, depth = 0): unknown {
  switch (r.below(14)) {
    case 0: return r.pick([null, true, false, undefined])
    case 1: return r.pick([-1, -33, 255, 256, 65535, 65536, 0xffffffff, 2 ** 32, 2 ** 53 - 1, Number.MIN_SAFE_INTEGER, 0o7777, 0o10000, 513, 511])
    case 2: return r.pick([0.5, -0.0, NaN, Infinity, -Infinity, 1e300, 2 ** 60, DATE_LIMIT_MS + 1])
    case 3: return r.pick([new Int64(0xffffffffffffffffn), new Int64(2n ** 53n + 1n), new Int64(-(2n ** 63n)), new Int64(BigInt(r.u32()) << 32n)])
    case 4: return r.pick(STRINGS)
    case 5: return r.bytes(r.pick([0, 1, 31, 32, 33, 64]))
    case 6: return claim(r)
    case 7: return deep(r, r.pick([2, 10, 100, 1000, 10000, 30000]))
    case 8: return new Raw(r.bytes(r.between(1, 6)))
    case 9: return new Raw(r.pick([Buffer.from([0xc1]), Buffer.from([0xd4, 0x01, 0x00]), Buffer.from([0xd6, 0xff, 0, 0, 0, 1]), Buffer.from([0xd4, 0x72, 0x00]), Buffer.from([0xc7, 0x00, 0x05])]))
    case 10: return depth > 3 ? [] : Array.from({ length: r.between(0, 7) }, () => hostileValue(r, depth + 1))
    case 11: return depth > 3 ? {} : randomMap(r, depth + 1)
    case 12: return Array.from({ length: r.pick([5, 6, 7]) }, () => r.chance(0.5) ? r.pick(STRINGS) : r.below(3))
    default: return r.pick([[0, 1], [[0, 1]], [-1, 1], [0, MAX_COPY_LENGTH + 1], [[1, 'a', 1, 0, 0, Buffer.alloc(32)]]])
  }
}

const FIELDS = ['t', 'id', 'path', 'from', 'to', 'target', 'mode', 'mtime', 'size', 'hash', 'have', 'inline', 'z', 'files', 'base', 'ranges',
  'version', 'nonce', 'auth', 'proof', 'digest', 'entries', 'done', 'ids', 'code', 'message', 'blockSize', 'found', 'resume', 'prefix', 'partials', '__proto__']

/** A map with mostly schema keys and hostile values (messages.test.ts's randomMap, wider). */
export function randomMap (r: Prng, depth = 0): Pairs {
  const pairs: Array<[unknown, unknown]> = []
  if (r.chance(0.8)) pairs.push(['t', r.chance(0.9) ? r.pick(ALL_TYPES) : hostileValue(r, depth + 1)])
  for (let n = r.between(0, 9); n > 0; n--) pairs.push([r.chance(0.95) ? r.pick(FIELDS) : hostileValue(r, depth + 2), hostileValue(r, depth)])
  return new Pairs(pairs)
}

/** `msg` with one field changed (a hostile value, removed, duplicated, shadowed by __proto__), packed by hand. */
export function mutateFields (r: Prng, msg: Message): Buffer {
  const pairs: Array<[unknown, unknown]> = Object.entries(msg)
  for (let k = r.between(1, 2); k > 0; k--) {
    if (pairs.length === 0) { pairs.push([r.pick(FIELDS), hostileValue(r)]); continue }
    const i = r.below(pairs.length)
    const [key, value] = pairs[i] as [unknown, unknown]
    switch (r.below(7)) {
      case 0: pairs.splice(i, 1); break
      case 1: pairs.push([key, hostileValue(r)]); break // a duplicate key: which one wins?
      case 2: pairs.push(['__proto__', { [String(key)]: value }]); pairs.splice(i, 1); break
      case 3: pairs.push([r.pick(FIELDS), hostileValue(r)]); break
      case 4: // one element of a list field
        if (Array.isArray(value) && value.length > 0) {
          const copy = [...value]
          const j = r.below(copy.length)
          const item = copy[j]
          copy[j] = Array.isArray(item) && item.length > 0 && r.chance(0.7) ? item.map((x, n) => n === r.below(item.length) ? hostileValue(r) : x) : hostileValue(r)
          pairs[i] = [key, copy]
          break
        }
        pairs[i] = [key, hostileValue(r)]
        break
      default: pairs[i] = [key, hostileValue(r)]
    }
  }
  if (r.chance(0.2)) {
    for (let i = pairs.length - 1; i > 0; i--) {
      const j = r.below(i + 1)
      const x = pairs[i] as [unknown, unknown]
      pairs[i] = pairs[j] as [unknown, unknown]
      pairs[j] = x
    }
  }
  return pack(new Pairs(pairs))
}

// ---- stream mutations ----------------------------------------------------------------------------

/** Lengths a prefix may lie with: zero, off by one, at and past each limit, u32 max. */
function lyingLen (r: Prng, honest: number, h: number, maxFrame: number): number {
  return r.pick([0, 1, 2, 3, 2 + h - 1, 2 + h, honest - 1, honest + 1, honest + r.between(2, 64), maxFrame + 1, maxFrame + 2, maxFrame + 3,
    PRE_AUTH_MAX_FRAME + 2, PRE_AUTH_MAX_FRAME + 3, MAX_FRAME + 2, MAX_FRAME + 3, 0x7fffffff, 0xfffffffe, 0xffffffff, r.u32()]) >>> 0
}

export const MUTATIONS = ['flip', 'byte', 'insert', 'delete', 'truncate', 'duplicate', 'len', 'hlen', 'header', 'field', 'noise-header', 'payload', 'frames'] as const
export type Mutation = (typeof MUTATIONS)[number]

/**
 * Applies 1–4 mutations to the frames of `samples`; structure-aware ones first (they keep the
 * framing so the message validators get to see them), byte-level ones on the joined stream.
 * Returns the stream and the names of the mutations applied.
 */
export function mutate (r: Prng, samples: readonly Sample[], packed: readonly Buffer[], maxFrame: number, count = r.between(1, 4)): { stream: Buffer, applied: Mutation[] } {
  const parts: Array<Part & { msg: Message }> = samples.map((s, i) => ({ header: packed[i] as Buffer, payload: s.payload, msg: s.msg }))
  const applied: Mutation[] = []
  const kinds: Mutation[] = []
  for (let k = 0; k < count; k++) kinds.push(MUTATIONS[r.weighted([10, 6, 5, 5, 4, 4, 8, 5, 6, 14, 4, 4, 4])] as Mutation)
  // Structure first, bytes after.
  const structural = new Set<Mutation>(['len', 'hlen', 'header', 'field', 'noise-header', 'payload', 'frames'])
  kinds.sort((a, b) => Number(structural.has(b)) - Number(structural.has(a)))
  let stream: Buffer | undefined
  for (const kind of kinds) {
    if (structural.has(kind) && stream === undefined && parts.length > 0) {
      const i = r.below(parts.length)
      const p = parts[i] as Part & { msg: Message }
      const honest = 2 + p.header.length + p.payload.length
      switch (kind) {
        case 'len': p.prefix = prefixOf(lyingLen(r, honest, p.header.length, maxFrame), p.header.length); break
        case 'hlen': p.prefix = prefixOf(honest, r.pick([0, 1, p.header.length - 1, p.header.length + 1, honest - 2, honest - 1, honest, 0xffff, r.below(0x10000)])); break
        case 'header': p.header = pack(randomMap(r)); break
        case 'field': p.header = mutateFields(r, p.msg); break
        case 'noise-header': {
          const h = r.bytes(r.between(1, 64))
          if (r.chance(0.5)) h[0] = 0x80 | r.below(16)
          p.header = h
          break
        }
        case 'payload':
          p.payload = r.chance(0.5) ? r.bytes(r.pick([0, 1, 100, 5000])) : p.payload.subarray(0, r.below(p.payload.length + 1))
          break
        default: { // frames: drop, duplicate or swap whole frames
          const j = r.below(parts.length)
          const op = r.below(3)
          if (op === 0 && parts.length > 1) parts.splice(i, 1)
          else if (op === 1) parts.splice(j, 0, { ...p })
          else { parts[i] = parts[j] as Part & { msg: Message }; parts[j] = p }
        }
      }
      if (p.header.length > 0xffff) p.header = p.header.subarray(0, 0xffff)
      applied.push(kind)
      continue
    }
    stream ??= streamOf(parts)
    let b = stream
    const at = r.below(b.length + 1)
    switch (kind) {
      case 'flip': if (b.length > 0) { const x = Math.min(at, b.length - 1); b = Buffer.from(b); b[x] = (b[x] as number) ^ (1 << r.below(8)) } break
      case 'byte': if (b.length > 0) { const x = Math.min(at, b.length - 1); b = Buffer.from(b); b[x] = r.pick([0, 0xff, 0x7f, 0x80, 0xc1, r.u32() & 0xff]) } break
      case 'insert': b = Buffer.concat([b.subarray(0, at), r.bytes(r.between(1, 8)), b.subarray(at)]); break
      case 'delete': b = Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + r.between(1, 16)))]); break
      case 'truncate': b = b.subarray(0, at); break
      default: { const from = r.below(b.length + 1); b = Buffer.concat([b.subarray(0, at), b.subarray(from, from + r.between(1, 64)), b.subarray(at)]) }
    }
    stream = b
    applied.push(kind)
  }
  return { stream: stream ?? streamOf(parts), applied }
}
