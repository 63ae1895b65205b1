/**
 * Layer 2 of the wire fuzz: a live `fsyncd serve DEST` (tokenless, loopback) over real TCP.
 *
 * DEST is `jail/dest` inside a sandbox; the jail holds nothing else, and the fuzz's symlink
 * targets point into the jail, so any write that escapes DEST lands where the end check looks.
 * A seeded tree is pushed first (its paths and content hashes feed the generator, so `have`,
 * `copy`, `getsig`, `move` and `delete` reach real content). Then 12 lanes of connections send
 * seeded traffic, each with random splits, small delays and one of several endings (FIN, `bye`,
 * wait for the server's verdict, abrupt close, RST):
 *   - pre-auth: mutated handshake-ish frames (hello, auth, anything), noise, lying prefixes;
 *   - handshake: a hello, then a bad auth, or auth and operations pipelined before `ready`;
 *   - post-auth: a real handshake (clientHandshake, token undefined), then a script of
 *     operations (uploads with data/copy/end, inline files, batches, resumes of a partial upload,
 *     mkdir/symlink/move/…) mutated like layer 1;
 *   - big: a frame at or past the 4 MiB limit, or a pre-auth frame past 1 KiB;
 *   - stalls (cases 3:k): silence, a partial prefix, hello then nothing, a slow trickle.
 * Invariants: the server process stays up and keeps answering a ping probe every second (≤ 10 s);
 * everything it sends is a valid frame carrying a server message; a stream the protocol must
 * refuse (a bad frame or message, a message of the wrong direction) is answered by a close within
 * 10 s without our FIN; any connection closes within 15 s of our FIN; a stalled pre-auth one
 * within the 10 s auth deadline (+3 s); its RSS stays under RSS_LIMIT. At the end: a real
 * `fsyncd push --once` of the (changed) tree succeeds and DEST equals it, the jail holds only
 * DEST, DEST/.fsyncd/tmp is empty, the server's open descriptors are back to their count before
 * the fuzz, it printed nothing on stderr (log level error) and it exits 0 on SIGTERM. Last, a
 * frame sent one byte per segment must not stop the server for more than a second (small-chunks).
 * Known issues (fuzz-common.ts) are steered around unless --fuzz-strict; see liveFuzz. */
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { FRAME_PREFIX, MAX_FRAME, type Message, type MessageType, PRE_AUTH_MAX_FRAME, type PutFile } from '@fsyncd/protocol'
import { binary, link, put, text } from './data.js'
import type { FuzzOptions } from './fuzz.js'
import { describe, type Failures, hexHead, type KnownIssue, type LayerResult, type Protocol, tolerated } from './fuzz-common.js'
import {
  caseSeed, compress, DATE_LIMIT_MS, frameOf, type GenContext, mtimeLimit, mutate, type Mutation, pack, prefixOf, Prng,
  randomPath, randomSample, type Sample, sampleOf, splitAt,
} from './fuzz-gen.js'
import { type Child, sleep, spawnTracked, tail, waitFor } from './proc.js'
import { pushOnce } from './tools/fsyncd.js'
import { compareTrees } from './verify.js'

export interface LiveOptions extends FuzzOptions { connections: number }

/** The server's resident set must stay under this through the fuzz (it idles at ~70 MiB). */
export const RSS_LIMIT = 768 * 2 ** 20
const WORKERS = 12
const STALLS = 6
const AUTH_DEADLINE_MS = 10_000
const SERVER_MESSAGES = new Set<MessageType>(['challenge', 'ready', 'entries', 'ack', 'nack', 'error', 'pong', 'sig'])
/** Codes that end a connection (protocol/SPEC.md §7); the others answer one operation (nack). */
const SESSION_ENDING = new Set(['MALFORMED', 'FRAME_TOO_LARGE', 'UNEXPECTED', 'VERSION', 'AUTH', 'TIMEOUT', 'BUSY', 'BAD_PATH', 'CLOSED'])
const CLIENT_OPS = new Set<MessageType>(['list', 'mkdir', 'symlink', 'delete', 'move', 'attrs', 'file', 'files', 'data', 'copy', 'end', 'abort', 'getsig', 'bye', 'ping'])

// ---- the server's output ------------------------------------------------------------------------

/** Reads what the server sends on a raw socket: every frame must decode to a server message. */
class ServerReader {
  readonly types: string[] = []
  errorCode: string | undefined
  violation: string | undefined
  closed = false
  readonly closedAt: Promise<number>
  readonly #decoder: InstanceType<Protocol['FrameDecoder']>

  constructor (readonly P: Protocol, socket: Socket) {
    this.#decoder = new P.FrameDecoder(MAX_FRAME)
    socket.on('data', (chunk: Buffer) => this.#onData(chunk))
    socket.on('error', () => {})
    this.closedAt = new Promise((resolve) => socket.once('close', () => { this.closed = true; resolve(performance.now()) }))
  }

  #onData (chunk: Buffer): void {
    if (this.violation !== undefined) return
    try {
      for (const f of this.#decoder.push(chunk)) {
        const m = this.P.decodeMessage(f.header)
        this.types.push(m.t)
        if (!SERVER_MESSAGES.has(m.t)) this.violation = `the server sent a "${m.t}"`
        if (m.t === 'error') this.errorCode = m.code
      }
      if (this.#decoder.error !== undefined) throw this.#decoder.error
    } catch (err) {
      this.violation = `the server sent bytes that do not decode: ${describe(err)}`
    }
  }
}

// ---- generation ---------------------------------------------------------------------------------

interface LiveContext extends GenContext {
  contents: Buffer[]
  /** Content over the server's 1 MiB partial-upload threshold: uploads of it are cut short and resumed. */
  big: { content: Buffer, hash: Buffer }
}

/** The server keeps an upload cut short from this size on (PARTIAL_MIN_BYTES in packages/server/src/partials.ts). */
const PARTIAL_MIN = 1024 * 1024

const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest()

/** A post-auth script: operations with consistent ids, uploads of real content, some strays. */
function opScript (r: Prng, ctx: LiveContext, n: number): Sample[] {
  const out: Sample[] = []
  let id = r.below(4)
  const kinds = ['mkdir', 'symlink', 'delete', 'move', 'attrs', 'file', 'files', 'getsig', 'list', 'ping', 'upload', 'copy-upload', 'abort', 'any', 'resume'] as const
  const open = (fid: number, size: number, hash: Buffer, extra: Partial<PutFile> = {}): Sample =>
    ({ msg: { t: 'file', id: fid, path: randomPath(r, ctx), size, mode: r.pick([0o644, 0o600, 0o755]), mtime: 1_700_000_000_000 + r.below(1e9), hash, have: false, ...extra }, payload: Buffer.alloc(0) })
  const data = (fid: number, bytes: Buffer): Sample[] => {
    const out: Sample[] = []
    for (let o = 0; o < bytes.length; o += 256 * 1024) out.push({ msg: { t: 'data', id: fid, z: 0 }, payload: bytes.subarray(o, o + 256 * 1024) })
    return out
  }
  for (let k = 0; k < n; k++) {
    const kind = kinds[r.weighted([8, 6, 5, 5, 5, 9, 4, 3, 2, 2, 7, 4, 2, 3, 1])] as (typeof kinds)[number]
    switch (kind) {
      case 'resume': {
        // The rest of the big content after `resume` bytes a partial upload holds (or claims to).
        const fid = id++
        const { content, hash } = ctx.big
        const resume = r.chance(0.8) ? r.between(PARTIAL_MIN / 2, PARTIAL_MIN) : r.between(1, content.length)
        out.push(open(fid, content.length, hash, { resume, prefix: r.chance(0.85) ? sha(content.subarray(0, resume)) : r.bytes(32) }))
        out.push(...data(fid, content.subarray(resume)), { msg: { t: 'end', id: fid }, payload: Buffer.alloc(0) })
        break
      }
      case 'upload': case 'copy-upload': case 'abort': {
        const pieces: Buffer[] = []
        const frames: Sample[] = []
        const fid = id++
        if (kind === 'copy-upload' && ctx.contents.length > 0) {
          const i = r.below(ctx.contents.length)
          const base = ctx.contents[i] as Buffer
          for (let j = r.between(1, 3); j > 0; j--) {
            const off = r.below(base.length + 1)
            const len = r.below(base.length - off + 1)
            pieces.push(base.subarray(off, off + len))
            frames.push({ msg: { t: 'copy', id: fid, base: ctx.hashes[i] as Buffer, ranges: [[off, len]] }, payload: Buffer.alloc(0) })
          }
        }
        for (let j = r.between(kind === 'copy-upload' ? 0 : 1, 3); j > 0; j--) {
          const piece = r.chance(0.5) ? Buffer.from(text(r.u32(), r.below(5000))) : binary(r.u32(), r.below(5000))
          const z = r.below(4) as 0 | 1 | 2 | 3
          pieces.push(piece)
          frames.push({ msg: { t: 'data', id: fid, z }, payload: compress(z, piece) })
        }
        const all = Buffer.concat(pieces)
        const honest = r.chance(0.85)
        out.push(open(fid, honest ? all.length : r.below(10_000), honest ? sha(all) : r.bytes(32)))
        out.push(...frames)
        out.push({ msg: kind === 'abort' ? { t: 'abort', id: fid } : { t: 'end', id: fid }, payload: Buffer.alloc(0) })
        break
      }
      case 'any': out.push(randomSample(r, ctx)); break
      default: {
        const s = sampleOf(r, kind, ctx)
        if ('id' in s.msg && s.msg.t !== 'getsig') (s.msg as { id: number }).id = id++
        if (s.msg.t === 'files') s.msg.files.forEach((f) => { f[0] = id++ })
        out.push(s)
      }
    }
  }
  // Now and then the script ends inside an upload of the big content past the partial threshold:
  // the connection's end leaves the server a partial upload, which later `resume`s look for.
  if (r.chance(0.04)) {
    const fid = id++
    out.push(open(fid, ctx.big.content.length, ctx.big.hash), ...data(fid, ctx.big.content.subarray(0, r.between(PARTIAL_MIN, ctx.big.content.length - 1))))
  }
  return out
}

/** Frames a script, mutated or not; `maxFrame` is the limit the mutations aim at. */
function encodeScript (P: Protocol, r: Prng, script: Sample[], mutated: boolean, maxFrame: number): { stream: Buffer, applied: Mutation[] } {
  const packed = script.map((s) => r.chance(0.8) ? P.encodeMessage(s.msg) : pack(s.msg))
  if (!mutated) return { stream: Buffer.concat(script.map((s, i) => frameOf({ header: packed[i] as Buffer, payload: s.payload }))), applied: [] }
  return mutate(r, script, packed, maxFrame)
}

/** The messages of `stream` up to the first that does not decode, with `maxFrame` as the limit. */
function decodeAll (P: Protocol, stream: Buffer, maxFrame: number): { messages: Message[], broken: boolean } {
  const d = new P.FrameDecoder(maxFrame)
  const messages: Message[] = []
  let frames: Array<{ header: Buffer }>
  try {
    frames = d.push(stream)
  } catch {
    return { messages, broken: true }
  }
  for (const f of frames) {
    try {
      messages.push(P.decodeMessage(f.header))
    } catch {
      return { messages, broken: true }
    }
  }
  return { messages, broken: d.error !== undefined }
}

/**
 * What the server must do with `stream` as far as the framing and the schema decide (`refuse`:
 * close it with an error), and every message it may process (for known-issue triggers: decoded
 * with the 4 MiB limit, as frames after a pipelined handshake may meet either limit).
 */
function oracle (P: Protocol, stream: Buffer, preAuth: boolean): { refuse: boolean, messages: Message[] } {
  const { messages, broken } = decodeAll(P, stream, MAX_FRAME)
  if (!preAuth) {
    return { refuse: broken || messages.some((m) => !CLIENT_OPS.has(m.t)), messages }
  }
  // hello (this version), then auth, each within the 1 KiB pre-auth limit: anything else ends the
  // handshake with an error; past the handshake, state decides, not the schema.
  const d = new P.FrameDecoder(PRE_AUTH_MAX_FRAME)
  let frames: Array<{ header: Buffer }>
  try {
    frames = d.push(stream)
  } catch {
    return { refuse: true, messages }
  }
  for (const [i, f] of frames.slice(0, 2).entries()) {
    let m: Message
    try {
      m = P.decodeMessage(f.header)
    } catch {
      return { refuse: true, messages }
    }
    if (i === 0 && (m.t !== 'hello' || m.version !== P.PROTOCOL_VERSION)) return { refuse: true, messages }
    if (i === 1) return { refuse: m.t !== 'auth', messages }
  }
  return { refuse: d.error !== undefined, messages }
}

/**
 * The first message of a session that runs into a known, reported server issue (KNOWN_ISSUES in
 * fuzz-common.ts), following which uploads are open as the server would.
 */
function knownTrigger (messages: readonly Message[]): KnownIssue | undefined {
  const open = new Set<number>()
  for (const m of messages) {
    if ((m.t === 'mkdir' || m.t === 'attrs' || m.t === 'symlink') && Math.abs(m.mtime) > DATE_LIMIT_MS) return 'mtime-range'
    if (m.t === 'file' && !m.have && m.inline === undefined) open.add(m.id)
    if (m.t === 'end' || m.t === 'abort') open.delete(m.id)
    if (m.t === 'files') {
      const ids = m.files.map((f) => f[0])
      if (new Set(ids).size < ids.length || ids.some((id) => open.has(id))) return 'files-leak'
    }
  }
  return undefined
}

// ---- one connection -----------------------------------------------------------------------------

type Ending = 'fin' | 'wait' | 'bye' | 'destroy' | 'reset'

interface CaseResult {
  kind: string
  ending: Ending
  sent: number
  problem?: string | undefined
  closeMs?: number | undefined
  errorCode?: string | undefined
  avoided?: KnownIssue | undefined
  stream?: Buffer | undefined
  /** Codes of the `error` messages the case sent. */
  echoed?: string[] | undefined
  /** Handshakes refused BUSY before one got in. */
  busy?: number | undefined
}

async function dial (port: number): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', noDelay: true })
  socket.on('error', () => {})
  await once(socket, 'connect')
  return socket
}

/** Writes `chunks` with small random delays; stops when the server has closed. Honours backpressure. */
async function send (socket: Socket, chunks: Buffer[], r: Prng, delays: boolean): Promise<number> {
  let sent = 0
  for (const c of chunks) {
    if (socket.destroyed || !socket.writable) break
    const room = socket.write(c)
    sent += c.length
    if (!room) await Promise.race([once(socket, 'drain'), once(socket, 'close')]).catch(() => {})
    if (delays && r.chance(Math.min(0.2, 20 / chunks.length))) await sleep(r.below(12))
  }
  return sent
}

async function closeWithin (reader: ServerReader, ms: number): Promise<number | undefined> {
  const t0 = performance.now()
  let timer: NodeJS.Timeout | undefined
  const at = await Promise.race([reader.closedAt, new Promise<undefined>((resolve) => { timer = setTimeout(() => resolve(undefined), ms) })])
  clearTimeout(timer)
  return at === undefined ? undefined : at - t0
}

async function handshake (P: Protocol, socket: Socket): Promise<void> {
  const conn = new P.Connection(socket)
  await P.clientHandshake(conn, undefined)
  conn.maxFrame = MAX_FRAME
  await conn.expect('ready')
  // From here on the bytes are ours: the Connection stops reading (its error listener stays).
  socket.removeAllListeners('data')
}

async function liveCase (P: Protocol, port: number, ctx: LiveContext, seed: number, index: number, strict: boolean, cleanup: readonly string[] = []): Promise<CaseResult> {
  const r = new Prng(caseSeed(seed, 2, index))
  const roll = r.below(100)
  const kind = roll < 35 ? 'pre-auth' : roll < 87 ? 'post-auth' : roll < 97 ? 'handshake' : 'big'
  const post = kind === 'post-auth' || (kind === 'big' && r.chance(0.6))
  const maxFrame = post ? MAX_FRAME : PRE_AUTH_MAX_FRAME
  let stream: Buffer = Buffer.alloc(0)
  let applied: Mutation[] = []
  let avoided: KnownIssue | undefined
  for (let attempt = 0; ; attempt++) {
    if (kind === 'pre-auth') {
      const script = Array.from({ length: r.between(1, 4) }, (_, i) => i === 0 && r.chance(0.6) ? sampleOf(r, 'hello', ctx) : r.chance(0.4) ? sampleOf(r, 'auth', ctx) : randomSample(r, ctx))
      ;({ stream, applied } = encodeScript(P, r, script, r.chance(0.85), maxFrame))
      if (r.chance(0.1)) stream = r.bytes(r.between(1, 2000))
    } else if (kind === 'handshake') {
      // A hello, then a bad auth, a pipelined auth + operations, or a wrong version.
      const hello = sampleOf(r, 'hello', ctx)
      const rest = r.chance(0.5) ? [{ msg: { t: 'auth', proof: null } as Message, payload: Buffer.alloc(0) }, ...opScript(r, ctx, r.between(1, 6))] : [sampleOf(r, 'auth', ctx), randomSample(r, ctx)]
      ;({ stream, applied } = encodeScript(P, r, [hello, ...rest], r.chance(0.6), PRE_AUTH_MAX_FRAME))
    } else if (kind === 'post-auth') {
      ;({ stream, applied } = encodeScript(P, r, opScript(r, ctx, r.between(1, 25)), r.chance(0.8), maxFrame))
      // First, unmutated, the deletion of folders earlier cases of this lane worked in.
      if (cleanup.length > 0) stream = Buffer.concat([...cleanup.map((path, i) => frameOf({ header: P.encodeMessage({ t: 'delete', id: 0xffff0000 + i, path }), payload: Buffer.alloc(0) })), stream])
    } else if (post) {
      // A data chunk at the 4 MiB limit for an open upload, or a prefix one byte past it.
      const over = r.below(2)
      const body = binary(r.u32(), 64 * 1024)
      const open: Message = { t: 'file', id: 1, path: 'big', size: 8 * 2 ** 20, mode: 0o644, mtime: 1_700_000_000_000, hash: r.bytes(32), have: false }
      const header = P.encodeMessage({ t: 'data', id: 1, z: 0 })
      const payload = Buffer.alloc(MAX_FRAME - header.length + over)
      for (let o = 0; o < payload.length; o += body.length) body.copy(payload, o)
      stream = Buffer.concat([frameOf({ header: P.encodeMessage(open), payload: Buffer.alloc(0) }), frameOf({ header, payload })])
      applied = [over === 1 ? 'len' : 'payload']
    } else {
      const len = r.pick([PRE_AUTH_MAX_FRAME + 3, PRE_AUTH_MAX_FRAME + 2, MAX_FRAME + 2, 0xffffffff])
      stream = Buffer.concat([prefixOf(len, 1), r.bytes(r.between(0, 3000))])
      applied = ['len']
    }
    const verdict = oracle(P, stream, !post)
    const trigger = knownTrigger(verdict.messages)
    if (trigger === undefined || !tolerated(trigger, strict)) break
    avoided = trigger
    if (attempt >= 8) { stream = Buffer.alloc(0); break }
  }
  const verdict = oracle(P, stream, !post)
  let ending: Ending = r.pick(post ? ['fin', 'fin', 'fin', 'wait', 'wait', 'bye', 'destroy', 'destroy', 'reset'] : ['fin', 'fin', 'fin', 'wait', 'wait', 'destroy', 'reset'])
  // files-leak: a batch whose nack meets a closed connection leaks temp files; let the server finish it.
  if (tolerated('files-leak', strict) && ending !== 'bye' && verdict.messages.some((m) => m.t === 'files')) {
    ending = 'bye'
    avoided ??= 'files-leak'
  }
  if (ending === 'bye') stream = Buffer.concat([stream, frameOf({ header: P.encodeMessage({ t: 'bye' }), payload: Buffer.alloc(0) })])
  // At most ~400 writes a connection (tiny segments for short streams; see small-chunks for long ones).
  const chunks = splitAt(stream, r.chunking(stream.length, Math.max(r.pick([1, 3, 17, 200, 1500, 65536]), Math.ceil(stream.length / 400))))
  const result: CaseResult = { kind: `${kind}${applied.length > 0 ? ` (${applied.join('+')})` : ''}`, ending, sent: 0, avoided, echoed: verdict.messages.flatMap((m) => m.t === 'error' ? [m.code] : []) }
  let socket = await dial(port)
  try {
    // More than 32 sessions (ours, and ones whose client left while the server works through what
    // they sent) is BUSY by the spec: wait for a slot, as a client would.
    for (let tries = 0; post; tries++) {
      try {
        await handshake(P, socket)
        break
      } catch (err) {
        if (!(err instanceof P.FsyncdError) || err.code !== 'BUSY' || tries >= 120) throw err
        result.busy = (result.busy ?? 0) + 1
        socket.destroy()
        await sleep(250)
        socket = await dial(port)
      }
    }
    const reader = new ServerReader(P, socket)
    if (ending === 'destroy' || ending === 'reset') {
      result.sent = await send(socket, chunks.slice(0, r.below(chunks.length + 1)), r, r.chance(0.3))
      if (ending === 'reset') socket.resetAndDestroy()
      else socket.destroy()
      return result
    }
    result.sent = await send(socket, chunks, r, r.chance(0.3))
    if (ending === 'wait' || ending === 'bye') {
      // bye: the server flushes and closes by itself (unless the stream broke before the bye).
      const limit = verdict.refuse ? 10_000 : ending === 'bye' ? 3000 : 300
      const ms = await closeWithin(reader, limit)
      if (ms === undefined && verdict.refuse) result.problem = `the server did not refuse a stream it must refuse within ${limit} ms (no FIN sent)`
      if (ms !== undefined) result.closeMs = ms
    }
    if (!reader.closed) {
      socket.end()
      const ms = await closeWithin(reader, 15_000)
      if (ms === undefined) result.problem ??= 'the server did not close within 15 s of our FIN'
      else result.closeMs = ms
    }
    if (reader.violation !== undefined) result.problem ??= reader.violation
    result.errorCode = reader.errorCode
    return result
  } catch (err) {
    // The handshake is the only step that may throw: the server must complete it.
    result.problem = `the real handshake failed: ${describe(err)}`
    return result
  } finally {
    socket.destroy()
    result.stream = stream
  }
}

async function stallCase (P: Protocol, port: number, ctx: LiveContext, seed: number, index: number): Promise<CaseResult> {
  const r = new Prng(caseSeed(seed, 3, index))
  const hello = frameOf({ header: P.encodeMessage(sampleOf(r, 'hello', ctx).msg), payload: Buffer.alloc(0) })
  const kinds = ['silence', 'partial prefix', 'partial frame', 'hello only', 'trickle'] as const
  const kind = r.pick(kinds)
  const t0 = performance.now()
  const socket = await dial(port)
  const reader = new ServerReader(P, socket)
  const result: CaseResult = { kind: `stall: ${kind}`, ending: 'wait', sent: 0 }
  try {
    if (kind === 'partial prefix') result.sent = await send(socket, [hello.subarray(0, r.between(1, FRAME_PREFIX - 1))], r, false)
    if (kind === 'partial frame') result.sent = await send(socket, [hello.subarray(0, r.between(FRAME_PREFIX, hello.length - 1))], r, false)
    if (kind === 'hello only') result.sent = await send(socket, [hello], r, false)
    if (kind === 'trickle') {
      // One byte every ~300 ms: progress must not extend the deadline.
      const stream = Buffer.concat([hello, frameOf({ header: P.encodeMessage({ t: 'auth', proof: null }), payload: Buffer.alloc(0) })])
      for (let i = 0; i < stream.length && !reader.closed; i++) {
        await send(socket, [stream.subarray(i, i + 1)], r, false)
        result.sent++
        await sleep(300)
      }
    }
    const left = AUTH_DEADLINE_MS + 3000 - (performance.now() - t0)
    if (!reader.closed && (await closeWithin(reader, Math.max(0, left))) === undefined) {
      result.problem = `a stalled pre-auth connection (${kind}) was still open ${((performance.now() - t0) / 1000).toFixed(1)} s after connecting (auth deadline ${AUTH_DEADLINE_MS / 1000} s)`
    }
    result.closeMs = performance.now() - t0
    if (reader.violation !== undefined) result.problem ??= reader.violation
    result.errorCode = reader.errorCode
    return result
  } finally {
    socket.destroy()
  }
}

/** Handshake + ping → pong on a fresh connection: the server is up and its event loop turns. */
async function probe (P: Protocol, port: number): Promise<number> {
  const t0 = performance.now()
  let socket = await dial(port)
  try {
    let conn = new P.Connection(socket)
    for (;;) {
      try {
        await P.clientHandshake(conn, undefined)
        conn.maxFrame = MAX_FRAME
        await conn.expect('ready')
        break
      } catch (err) {
        if (!(err instanceof P.FsyncdError) || err.code !== 'BUSY') throw err
        socket.destroy()
        await sleep(100)
        socket = await dial(port)
        conn = new P.Connection(socket)
      }
    }
    await conn.send({ t: 'ping' })
    await conn.expect('pong')
    await conn.send({ t: 'bye' })
    return performance.now() - t0
  } finally {
    socket.destroy()
  }
}

interface SlowFrame { bytes: number, sendMs: number, blockMs: number, rssGrowth: number }
/** Another client waits at most this long once a slowly sent frame completes. */
const SLOW_FRAME_BLOCK_MS = 1000

/**
 * A post-auth frame of `bytes` sent one byte per TCP segment (a yield to the event loop between
 * writes, so the server reads them one by one): the server's RSS growth while it holds the frame,
 * and how long another client's ping waits once the frame completes.
 */
async function slowFrame (P: Protocol, port: number, pid: number, bytes: number): Promise<SlowFrame> {
  const slow = await dial(port)
  const other = await dial(port)
  try {
    await handshake(P, slow)
    slow.on('data', () => {})
    const conn = new P.Connection(other)
    await P.clientHandshake(conn, undefined)
    conn.maxFrame = MAX_FRAME
    await conn.expect('ready')
    const header = P.encodeMessage({ t: 'ping' })
    const frame = Buffer.concat([prefixOf(2 + header.length + bytes, header.length), header, Buffer.alloc(bytes, 0x61)])
    const rss0 = (statusKiB(pid, 'VmRSS') ?? 0) * 1024
    const t0 = performance.now()
    for (let i = 0; i < frame.length - 1; i++) {
      slow.write(frame.subarray(i, i + 1))
      if (i % 4 === 3) await new Promise((resolve) => setImmediate(resolve))
    }
    const sendMs = performance.now() - t0
    await sleep(300)
    const rssGrowth = Math.max(0, (statusKiB(pid, 'VmRSS') ?? 0) * 1024 - rss0)
    slow.write(frame.subarray(frame.length - 1))
    await sleep(20)
    const t1 = performance.now()
    await conn.send({ t: 'ping' })
    await within(conn.expect('pong'), 600_000, 'the pong after a slowly sent frame')
    return { bytes, sendMs, blockMs: performance.now() - t1, rssGrowth }
  } finally {
    slow.destroy()
    other.destroy()
  }
}

async function within<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms) })])
  } finally {
    clearTimeout(timer)
  }
}

// ---- the server process -------------------------------------------------------------------------

function statusKiB (pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? undefined : Number(m[1])
  } catch { return undefined }
}

/** The server's open descriptors: fd → what it points at. */
function openFds (pid: number): Map<string, string> {
  const out = new Map<string, string>()
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try { out.set(fd, readlinkSync(`/proc/${pid}/fd/${fd}`)) } catch {}
    }
  } catch {}
  return out
}

/** The server's log level: error (nothing expected); FSYNCD_BENCH_FUZZ_LOG=info or so to debug a failure (with --keep: server.log in the sandbox). */
const SERVER_LOG_LEVEL = process.env.FSYNCD_BENCH_FUZZ_LOG ?? 'error'

async function startServe (bin: string, dest: string): Promise<{ child: Child, port: number }> {
  const child = spawnTracked(process.execPath, [bin, 'serve', dest, '--port', '0', '--json', '--log-level', SERVER_LOG_LEVEL], { node: true, env: { FSYNCD_TOKEN: undefined } })
  const port = await waitFor(() => {
    const line = child.stdout().split('\n').find((l) => l.includes('"listening"'))
    return line === undefined ? undefined : (JSON.parse(line) as { port: number }).port
  }, 15_000, 'fsyncd serve to listen', child)
  return { child, port }
}

/** The tree pushed before the fuzz: paths made of the generator's names, so operations collide with it. */
async function seedTree (src: string, seed: number): Promise<void> {
  await put(join(src, 'f'), text(seed, 1000))
  await put(join(src, 'a', 'f'), binary(seed + 1, 20_000))
  await put(join(src, 'a', 'b', 'f'), text(seed + 2, 64 * 1024), 0o600)
  await put(join(src, 'b', 'f'), Buffer.from('abc'), 0o755)
  await put(join(src, 'b', 'c', 'f'), Buffer.alloc(0))
  await put(join(src, 'c', 'a'), binary(seed + 3, 300_000))
  await mkdir(join(src, 'c', 'b'), { recursive: true })
  await link(join(src, 'l'), 'a/f')
  await link(join(src, 'a', 'l'), '../f')
}

// ---- the layer ----------------------------------------------------------------------------------

export async function liveFuzz (P: Protocol, opts: LiveOptions, known: Partial<Record<KnownIssue, number>>, failures: Failures): Promise<LayerResult> {
  const sandbox = join(opts.work, 'fuzz-live')
  const jail = join(sandbox, 'jail')
  const dest = join(jail, 'dest')
  const src = join(sandbox, 'src')
  await rm(sandbox, { recursive: true, force: true })
  await mkdir(dest, { recursive: true })
  await seedTree(src, opts.seed)
  const notes: string[] = []
  let failed = 0
  const fail = (line: string): void => { failed++; failures.add(`fuzz live, seed ${opts.seed}: ${line}`) }

  const { child, port } = await startServe(opts.bin, dest)
  const pid = child.proc.pid as number
  let maxRss = 0
  const rssPoll = setInterval(() => { const v = statusKiB(pid, 'VmRSS'); if (v !== undefined) maxRss = Math.max(maxRss, v * 1024) }, 50)
  const t0 = performance.now()
  const stats = { byKind: {} as Record<string, number>, byEnding: {} as Record<string, number>, errorFrames: {} as Record<string, number>, bytesSent: 0, maxCloseMs: 0, maxStallCloseMs: 0, probes: 0, maxProbeMs: 0, avoided: 0, busy: 0 }
  let cases = 0
  try {
    const first = await pushOnce(src, port, join(sandbox, 'state-seed'))
    if (first.code !== 0) throw new Error(`the seeding push exited ${String(first.code)}: ${tail(first.stderr)}`)
    const seeded = await compareTrees(src, dest)
    if (seeded.length > 0) throw new Error(`the seeding push left DEST different: ${seeded.join('; ')}`)
    const contents: Buffer[] = []
    const paths: string[] = []
    for (const p of ['f', 'a/f', 'a/b/f', 'b/f', 'b/c/f', 'c/a']) {
      contents.push(readFileSync(join(src, p)))
      paths.push(p)
    }
    paths.push('a', 'a/b', 'b', 'b/c', 'c', 'c/b', 'l', 'a/l')
    const bigContent = binary(opts.seed + 11, PARTIAL_MIN + 256 * 1024)
    // Lane w's cases run one after the other; unless strict, lanes 1.. work in folders of their
    // own (w1/, w2/, …) so that no two sessions race on one path (link-race), lane 0 on the root
    // and the seeded tree.
    const separate = tolerated('link-race', opts.strict)
    const caseContext = (k: number): LiveContext => {
      const lane = k % WORKERS
      const shared = !separate || lane === 0
      return {
        wide: false,
        names: ['a', 'b', 'c', 'f', 'l'],
        paths: shared ? paths : [],
        hashes: contents.map(sha),
        contents,
        big: { content: bigContent, hash: sha(bigContent) },
        // Lane 0 shares the root with the lane-0 cases before it whose sessions the server may
        // still be finishing: its links stay inside DEST (an escape needs such a race: link-race).
        targets: shared && separate ? ['a', 'f', 'a/f', 'b/c', 'c/a'] : [jail, join(jail, 'escape'), '..', '../escape', 'a', 'f', dest],
        prefix: shared ? '' : `w${lane}/${k}/`,
        maxMtime: mtimeLimit(P),
      }
    }
    /** Folders of earlier cases of k's lane, deleted at the start of k (two rounds back: their sessions are over). */
    const cleanupFor = (k: number): string[] => {
      const lane = k % WORKERS
      if (!separate || lane === 0) return []
      const out: string[] = []
      for (let j = k - 6 * WORKERS; j <= k - 2 * WORKERS; j += WORKERS) if (j >= 0) out.push(`w${lane}/${j}`)
      return out
    }
    const ctx = caseContext(0)
    await probe(P, port)
    const fdsBefore = openFds(pid)
    const rssBefore = (statusKiB(pid, 'VmRSS') ?? 0) * 1024

    let stop = false
    const unexpectedEnds: string[] = []
    const record = (label: string, r: CaseResult): void => {
      cases++
      stats.byKind[r.kind.replace(/ \(.*/, '')] = (stats.byKind[r.kind.replace(/ \(.*/, '')] ?? 0) + 1
      stats.byEnding[r.ending] = (stats.byEnding[r.ending] ?? 0) + 1
      stats.bytesSent += r.sent
      stats.busy += r.busy ?? 0
      if (r.errorCode !== undefined) {
        stats.errorFrames[r.errorCode] = (stats.errorFrames[r.errorCode] ?? 0) + 1
        // (an `error` the client sent before auth comes back as is: expect() rethrows the peer's code)
        if (!SESSION_ENDING.has(r.errorCode) && r.echoed?.includes(r.errorCode) !== true) unexpectedEnds.push(`${label} ${r.errorCode}`)
      }
      if (r.avoided !== undefined) { stats.avoided++; known[r.avoided] = (known[r.avoided] ?? 0) + 1 }
      if (r.closeMs !== undefined) {
        if (r.kind.startsWith('stall')) stats.maxStallCloseMs = Math.max(stats.maxStallCloseMs, r.closeMs)
        else stats.maxCloseMs = Math.max(stats.maxCloseMs, r.closeMs)
      }
      if (r.problem !== undefined) {
        fail(`case ${label} (${r.kind}, ${r.ending}): ${r.problem}${r.stream !== undefined ? ` — stream ${hexHead(r.stream, 96)}` : ''} — replay: node bench/dist/run.js --only fuzz --seed ${opts.seed} --fuzz-case ${label}`)
      }
    }
    const guard = async (label: string, run: () => Promise<CaseResult>): Promise<void> => {
      try {
        record(label, await within(run(), 60_000, `case ${label}`))
      } catch (err) {
        record(label, { kind: '?', ending: 'fin', sent: 0, problem: `the case did not finish: ${describe(err)}` })
      }
    }
    const onlyLayer = opts.only?.[0]
    const single = onlyLayer === 2 || onlyLayer === 3

    // The liveness probe, every second.
    const prober = (async () => {
      while (!stop && !single) {
        try {
          const ms = await within(probe(P, port), 10_000, 'probe')
          stats.probes++
          stats.maxProbeMs = Math.max(stats.maxProbeMs, ms)
        } catch (err) {
          fail(`the liveness probe failed at ${((performance.now() - t0) / 1000).toFixed(1)} s: ${describe(err)}${child.proc.exitCode !== null ? ` (server exited ${child.proc.exitCode}: ${tail(child.stderr())})` : ''}`)
          if (child.proc.exitCode !== null) return
        }
        await sleep(1000)
      }
    })()
    // Stalled pre-auth connections, a few at a time, for as long as the fuzz runs.
    let nextStall = 0
    const stalls = single ? [] : Array.from({ length: STALLS }, async () => {
      do {
        const k = nextStall++
        await guard(`3:${k}`, async () => await stallCase(P, port, ctx, opts.seed, k))
      } while (!stop)
    })
    // Case k runs in lane k mod WORKERS (each lane one case at a time), and unless strict in a
    // folder of its own, w<lane>/<k>/ (lane 0: the root and the seeded tree): cases that the server
    // may still be finishing when the next starts never share a path (link-race).
    const workers = single ? [] : Array.from({ length: WORKERS }, async (_, lane) => {
      for (let k = lane; k < opts.connections && child.proc.exitCode === null; k += WORKERS) {
        await guard(`2:${k}`, async () => await liveCase(P, port, caseContext(k), opts.seed, k, opts.strict, cleanupFor(k)))
        if (k % 500 === 499) opts.log(`fuzz live: ~${k + 1}/${opts.connections} connections, ${failed} failures, server RSS ${(maxRss / 2 ** 20).toFixed(0)} MiB max`)
      }
    })
    const replay = opts.only?.[1] ?? 0
    if (onlyLayer === 2) await guard(`2:${replay}`, async () => await liveCase(P, port, caseContext(replay), opts.seed, replay, opts.strict, cleanupFor(replay)))
    if (onlyLayer === 3) await guard(`3:${opts.only?.[1] ?? 0}`, async () => await stallCase(P, port, ctx, opts.seed, opts.only?.[1] ?? 0))
    await Promise.all(workers)
    stop = true
    await Promise.all([...stalls, prober])
    const fuzzMs = performance.now() - t0
    if (child.proc.exitCode !== null) throw new Error(`the server exited ${child.proc.exitCode} during the fuzz: ${tail(child.stderr())}`)

    // small-chunks: one frame in one-byte segments, alone on the server.
    let slow: SlowFrame | undefined
    if (!single) {
      // How many segments arrive apart depends on timing (TCP and the reader coalesce them), so the
      // figure varies from run to run; layer 1 measures the decoder itself.
      slow = await slowFrame(P, port, pid, opts.quick ? 150_000 : 200_000)
      if (slow.blockMs > SLOW_FRAME_BLOCK_MS) {
        if (tolerated('small-chunks', opts.strict)) known['small-chunks'] = (known['small-chunks'] ?? 0) + 1
        else fail(`a ${slow.bytes.toLocaleString('en')}-byte frame sent one byte per segment blocked the server for ${(slow.blockMs / 1000).toFixed(1)} s once complete`)
      }
    }

    // The end checks: a real push converges, nothing escaped, nothing leaked.
    await put(join(src, 'f'), text(opts.seed + 9, 1500))
    await put(join(src, 'new', 'f'), binary(opts.seed + 10, 5000))
    const last = await pushOnce(src, port, join(sandbox, 'state-final'))
    if (last.code !== 0) fail(`the final push exited ${String(last.code)}: ${tail(last.stderr)}`)
    const diff = await compareTrees(src, dest)
    if (diff.length > 0) fail(`DEST differs from the source after the final push: ${diff.join('; ')}`)
    const outside = (await readdir(jail)).filter((n) => n !== 'dest')
    if (outside.length > 0) fail(`written outside DEST, in the jail around it: ${outside.join(', ')}`)
    const temps = await readdir(join(dest, '.fsyncd', 'tmp')).catch(() => [])
    const tempLinks = temps.filter((n) => { try { return lstatSync(join(dest, '.fsyncd', 'tmp', n)).isSymbolicLink() } catch { return false } })
    if (temps.length > tempLinks.length) fail(`${temps.length - tempLinks.length} temp files left in DEST/.fsyncd/tmp after every session ended`)
    // A temp symlink is left when the rename of a `symlink` fails because another session changed
    // its parent in between: lane 0's cases may still race that way (link-race).
    if (tempLinks.length > 0) {
      if (!tolerated('link-race', opts.strict)) fail(`${tempLinks.length} temp symlinks left in DEST/.fsyncd/tmp after every session ended`)
      else known['link-race'] = (known['link-race'] ?? 0) + tempLinks.length
      notes.push(`${tempLinks.length} temp symlinks left in DEST/.fsyncd/tmp by a symlink whose rename met a concurrent change (link-race)`)
    }
    let fdsAfter = openFds(pid)
    for (let i = 0; i < 100 && fdsAfter.size > fdsBefore.size; i++) { await sleep(100); fdsAfter = openFds(pid) }
    if (fdsAfter.size > fdsBefore.size) {
      const added = [...fdsAfter].filter(([fd, what]) => fdsBefore.get(fd) !== what).map(([fd, what]) => `${fd} → ${what.replace(sandbox, '…')}`)
      fail(`the server holds ${fdsAfter.size} descriptors after the fuzz, ${fdsBefore.size} before: ${added.slice(0, 8).join(', ')}`)
    }
    if (maxRss > RSS_LIMIT) fail(`server RSS reached ${(maxRss / 2 ** 20).toFixed(0)} MiB (limit ${RSS_LIMIT / 2 ** 20} MiB)`)
    const rssAfter = (statusKiB(pid, 'VmRSS') ?? 0) * 1024
    notes.push(
      `${cases} connections in ${(fuzzMs / 1000).toFixed(1)} s (${WORKERS} at a time + ${STALLS} stalled ones): ${JSON.stringify(stats.byKind)}; endings ${JSON.stringify(stats.byEnding)}; ${(stats.bytesSent / 2 ** 20).toFixed(1)} MiB sent`,
      `error frames received: ${JSON.stringify(stats.errorFrames)}; ${stats.busy} handshakes refused BUSY and retried; slowest close ${(stats.maxCloseMs / 1000).toFixed(2)} s after FIN or refusal, stalled ones closed by ${(stats.maxStallCloseMs / 1000).toFixed(1)} s; ${stats.probes} liveness probes, slowest ${stats.maxProbeMs.toFixed(0)} ms`,
      `server RSS ${(rssBefore / 2 ** 20).toFixed(0)} MiB before, ${(maxRss / 2 ** 20).toFixed(0)} MiB peak, ${(rssAfter / 2 ** 20).toFixed(0)} MiB after; descriptors ${fdsBefore.size} before, ${fdsAfter.size} after; final push ${last.code === 0 ? 'ok' : 'FAILED'}, DEST ${diff.length === 0 ? 'equals the source' : 'DIFFERS'}, jail ${outside.length === 0 ? 'holds only DEST' : 'HAS EXTRA ENTRIES'}`,
    )
    if (unexpectedEnds.length > 0) {
      // IO here has so far been deep-t (a RangeError out of validateMessage becomes IO); replay the case to see.
      const line = `sessions ended with a code the spec keeps for nacks (replay them with FSYNCD_BENCH_FUZZ_LOG=warn --keep): ${unexpectedEnds.slice(0, 10).join(', ')}${unexpectedEnds.length > 10 ? ', …' : ''}`
      if (opts.strict) fail(line)
      else notes.push(line)
    }
    if (slow !== undefined) {
      notes.push(`a ${slow.bytes.toLocaleString('en')}-byte frame sent one byte per TCP segment (${(slow.sendMs / 1000).toFixed(1)} s; how many arrive apart varies with load): the server held +${(slow.rssGrowth / 2 ** 20).toFixed(0)} MiB of RSS for it (${(slow.rssGrowth / slow.bytes).toFixed(0)} B per byte), and another client's ping waited ${(slow.blockMs / 1000).toFixed(2)} s once it completed (limit ${SLOW_FRAME_BLOCK_MS / 1000} s)`)
    }
    if (stats.avoided > 0) notes.push(`${stats.avoided} generated streams steered around known issues (KNOWN_ISSUES in src/fuzz-common.ts; --fuzz-strict sends them)`)
    if (separate) notes.push(`lanes 1–11 work in a folder per case (w<lane>/<case>/), lane 0 on the root with links inside DEST, so that no two sessions race a link on one path (link-race; --fuzz-strict lets them)`)
  } catch (err) {
    fail(`the live layer stopped: ${describe(err)}`)
  } finally {
    clearInterval(rssPoll)
    if (child.proc.exitCode === null) child.proc.kill('SIGTERM')
    const code = await within(child.exited, 15_000, 'fsyncd serve to exit on SIGTERM').catch((err: unknown) => { child.proc.kill('SIGKILL'); return describe(err) })
    if (code !== 0) fail(`the server exited ${String(code)} on SIGTERM: ${tail(child.stderr())}`)
    // Anything on stderr but pino lines below error level (when a lower level was asked for) is news.
    const unexpected = child.stderr().split('\n').filter((l) => l.trim() !== '' && !/^\{"level":[1-4]\d,/.test(l))
    if (unexpected.length > 0) fail(`the server wrote to stderr: ${tail(unexpected.join('\n'))}`)
    if (opts.keep) await writeFile(join(sandbox, 'server.log'), child.stderr())
    else await rm(sandbox, { recursive: true, force: true })
  }
  return { layer: 'live server (TCP)', cases, failures: failed, ms: performance.now() - t0, maxRss, notes, stats }
}

