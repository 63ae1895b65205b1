/**
 * Layer 1 of the wire fuzz, in process: seeded streams of valid frames of every message type,
 * then mutated (fuzz-gen.ts), go through FrameDecoder + decodeMessage in every split for short
 * streams and in random chunkings for long ones. Invariants: nothing but FsyncdError with a known
 * code escapes (frame errors MALFORMED/FRAME_TOO_LARGE/CLOSED/AUTH, message errors
 * MALFORMED/BAD_PATH); the decoder never holds more than maxFrame + prefix after a push, never
 * yields an impossible frame, stays dead after an error, and end() is CLOSED exactly when bytes are
 * held; every split of a stream gives the same frames and the same end; an unmutated stream
 * decodes to exactly its messages and payloads; whatever the validators accept re-encodes to itself
 * and has wire paths only; validateMessage on plain JS values throws FsyncdError only; a failed
 * decode leaves msgpackr's shared state clean (a canary decodes right after every case); and no
 * case takes more than SLOW_CASE_MS. Runs in worker threads (fuzz-l1-worker.ts).
 */
import { performance } from 'node:perf_hooks'
import { FRAME_PREFIX, MAX_FRAME, MAX_HEADER, type Message, PRE_AUTH_MAX_FRAME } from '@fsyncd/protocol'
import { canon, describe, Failures, hexHead, KNOWN_ISSUES, type KnownIssue, type Protocol } from './fuzz-common.js'
import { caseSeed, frameOf, mtimeLimit, mutate, type Mutation, pack, prefixOf, Prng, randomSample, type Sample, splitAt, wideContext } from './fuzz-gen.js'

/** A case slower than this is a failure: decoding is linear, and the largest stream is ~4 MiB. */
const SLOW_CASE_MS = 5000
const FRAME_CODES = new Set(['MALFORMED', 'FRAME_TOO_LARGE', 'CLOSED', 'AUTH'])
const MESSAGE_CODES = new Set(['MALFORMED', 'BAD_PATH'])

/** A broken invariant of the decoder, found while feeding it. */
class Broken extends Error {}

interface Outcome { frames: Array<{ header: Buffer, payload: Buffer }>, end: string }

export interface L1Stats {
  clean: number
  mutated: number
  noise: number
  feeds: number
  bytes: number
  frames: number
  accepted: number
  bigFrames: number
  /** Valid samples over the 65,535-byte header, left out. */
  unframeable: number
  frameErrors: Record<string, number>
  messageErrors: Record<string, number>
  mutations: Record<string, number>
  maxCaseMs: number
}

/**
 * Pushes `chunks` through a fresh decoder as Connection does (stop at the first error), checking
 * the decoder's own invariants. Throws Broken naming a broken invariant.
 */
function feed (P: Protocol, maxFrame: number, chunks: readonly Buffer[]): Outcome {
  const d = new P.FrameDecoder(maxFrame)
  const frames: Outcome['frames'] = []
  const dead = (code: string): Outcome => {
    // A dead stream gives no frame again (Connection stops feeding it; a push may throw again or not).
    try {
      const more = d.push(Buffer.alloc(0))
      if (more.length > 0) throw new Broken(`after ${code}, an empty push gave ${more.length} frames`)
    } catch (err) {
      if (err instanceof Broken) throw err
      if (!(err instanceof P.FsyncdError)) throw new Broken(`after ${code}, a further push threw ${describe(err)}`)
    }
    return { frames, end: code }
  }
  for (const chunk of chunks) {
    let got: Array<{ header: Buffer, payload: Buffer }>
    try {
      got = d.push(chunk)
    } catch (err) {
      if (!(err instanceof P.FsyncdError) || !P.isErrorCode(err.code)) throw new Broken(`push threw ${describe(err)}`)
      if (!FRAME_CODES.has(err.code)) throw new Broken(`push threw FsyncdError(${err.code}), not a frame error`)
      return dead(err.code)
    }
    for (const f of got) {
      if (f.header.length === 0 || f.header.length + f.payload.length > maxFrame) throw new Broken(`an impossible frame: header ${f.header.length} + payload ${f.payload.length} with maxFrame ${maxFrame}`)
      frames.push(f)
    }
    if (d.buffered > maxFrame + FRAME_PREFIX) throw new Broken(`holds ${d.buffered} bytes after a push, over maxFrame ${maxFrame} + ${FRAME_PREFIX}`)
    const pending = d.error
    if (pending !== undefined) {
      if (!(pending instanceof P.FsyncdError) || !FRAME_CODES.has(pending.code)) throw new Broken(`decoder.error is ${describe(pending)}`)
      return dead(pending.code)
    }
  }
  const held = d.buffered
  try {
    d.end()
  } catch (err) {
    if (!(err instanceof P.FsyncdError) || err.code !== 'CLOSED') throw new Broken(`end() threw ${describe(err)}`)
    if (held === 0) throw new Broken('end() threw CLOSED with nothing held')
    return { frames, end: 'end:CLOSED' }
  }
  if (held !== 0) throw new Broken(`end() was clean with ${held} bytes held`)
  return { frames, end: 'ok' }
}

function sameOutcome (a: Outcome, b: Outcome): string | undefined {
  if (a.end !== b.end) return `ends ${b.end}, one chunk ends ${a.end}`
  if (a.frames.length !== b.frames.length) return `${b.frames.length} frames, one chunk gives ${a.frames.length}`
  for (let i = 0; i < a.frames.length; i++) {
    const x = a.frames[i] as Outcome['frames'][number]
    const y = b.frames[i] as Outcome['frames'][number]
    if (!x.header.equals(y.header) || !x.payload.equals(y.payload)) return `frame ${i} differs`
  }
  return undefined
}

/** Streams up to this long are fed cut at every offset. */
const SHORT = 80

/** The chunkings a stream is fed in: every 2-way split of a short one, random ones of a long one. */
function chunkings (r: Prng, stream: Buffer): Array<[string, Buffer[]]> {
  const out: Array<[string, Buffer[]]> = []
  const n = stream.length
  if (n <= SHORT) {
    for (let cut = 1; cut < n; cut++) out.push([`cut at ${cut}`, [stream.subarray(0, cut), stream.subarray(cut)]])
    if (n <= 48) {
      for (let a = 1; a < n; a += r.between(6, 16)) {
        const b = r.between(a, n)
        out.push([`cuts at ${a},${b}`, [stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)]])
      }
    }
  } else {
    for (let k = 0; k < 2; k++) {
      const cut = r.between(1, n - 1)
      out.push([`cut at ${cut}`, [stream.subarray(0, cut), stream.subarray(cut)]])
    }
    // Tiny chunks for streams up to 16 KiB only: the decoder's cost grows with the square of the
    // chunk count past ~64k chunks (KNOWN_ISSUES small-chunks; the live layer measures it).
    for (const max of n > 100_000 ? [65536, 7777] : [n > 16_384 ? 64 : r.pick([2, 7, 64]), r.pick([256, 1500, 16384])]) {
      const cuts = r.chunking(n, max)
      out.push([`random chunks ≤ ${max} B (${cuts.length})`, splitAt(stream, cuts)])
    }
  }
  if (n > 1 && n <= 2048 && r.chance(0.04)) out.push(['one byte at a time', splitAt(stream, Array.from({ length: n }, (_, i) => i + 1))])
  return out
}

const CANARY: Message = { t: 'file', id: 7, path: 'canary/ü.txt', size: 3, mode: 0o644, mtime: 1_700_000_000_000, hash: Buffer.alloc(32, 7), have: false, inline: 0 }

interface L1Case { stream: Buffer, maxFrame: number, kind: string, applied: Mutation[], samples: Sample[] }

/** Builds case `index`: its stream, maxFrame, kind; counts known issues it ran into. */
function buildL1Case (P: Protocol, seed: number, index: number, unframeable: (n: number) => void): L1Case {
  const r = new Prng(caseSeed(seed, 1, index))
  const ctx = wideContext(mtimeLimit(P))
  const roll = r.below(100)
  const kind = roll < 20 ? 'clean' : roll < 25 ? 'noise' : 'mutated'
  if (kind === 'noise') {
    const stream = r.bytes(r.pick([0, 1, 5, 6, 7, 30, 200, 3000]))
    // Give noise a plausible prefix now and then, so it gets past the length check.
    if (stream.length >= 7 && r.chance(0.5)) prefixOf(2 + r.between(1, stream.length - 6), r.between(1, Math.max(1, stream.length - 6))).copy(stream)
    return { stream, maxFrame: r.pick([PRE_AUTH_MAX_FRAME, MAX_FRAME, 0, 7, 64]), kind, applied: [], samples: [] }
  }
  let samples: Sample[] = Array.from({ length: r.between(1, kind === 'clean' ? 6 : 4) }, () => randomSample(r, ctx))
  // Rarely, a frame at the very limit after auth (a 4 MiB data chunk), or one byte over it.
  const big = r.chance(1 / 1500)
  if (big) {
    const header = P.encodeMessage({ t: 'data', id: 1, z: 0 })
    const over = kind === 'clean' ? 0 : r.below(2)
    samples.push({ msg: { t: 'data', id: 1, z: 0 }, payload: r.bytes(MAX_FRAME - header.length + over) })
  }
  let packed = samples.map((s) => r.chance(0.7) ? P.encodeMessage(s.msg) : pack(s.msg))
  // The schema lets an `entries` or `files` message hold more than a 65,535-byte header can:
  // senders split by encoded size (header-limit, fixed in 9fb5767); such a sample is left out.
  const fits = packed.map((h) => h.length <= MAX_HEADER)
  unframeable(fits.filter((ok) => !ok).length)
  samples = samples.filter((_, i) => fits[i])
  packed = packed.filter((_, i) => fits[i])
  if (kind === 'clean') {
    const largest = Math.max(0, ...samples.map((s, i) => (packed[i] as Buffer).length + s.payload.length))
    const maxFrame = largest <= PRE_AUTH_MAX_FRAME && r.chance(0.5) ? PRE_AUTH_MAX_FRAME : MAX_FRAME
    return { stream: Buffer.concat(samples.map((s, i) => frameOf({ header: packed[i] as Buffer, payload: s.payload }))), maxFrame, kind, applied: [], samples }
  }
  const maxFrame = big ? MAX_FRAME : r.chance(0.8) ? r.pick([PRE_AUTH_MAX_FRAME, MAX_FRAME]) : r.pick([0, 7, 64, 300])
  const { stream, applied } = mutate(r, samples, packed, maxFrame)
  return { stream, maxFrame, kind, applied, samples }
}

/** Runs case `index`; returns the broken invariant, or undefined. */
function runL1Case (P: Protocol, c: L1Case, seed: number, index: number, stats: L1Stats, known: (k: KnownIssue) => void): string | undefined {
  const r = new Prng(caseSeed(seed, 1, index) ^ 0x5bd1e995)
  let reference: Outcome
  try {
    reference = feed(P, c.maxFrame, [c.stream])
  } catch (problem) {
    return `in one chunk: ${problem instanceof Broken ? problem.message : describe(problem)}`
  }
  stats.feeds++
  stats.bytes += c.stream.length
  stats.frames += reference.frames.length
  if (reference.end !== 'ok') stats.frameErrors[reference.end] = (stats.frameErrors[reference.end] ?? 0) + 1
  for (const [how, chunks] of chunkings(r, c.stream)) {
    let got: Outcome
    try {
      got = feed(P, c.maxFrame, chunks)
    } catch (problem) {
      return `${how}: ${problem instanceof Broken ? problem.message : describe(problem)}`
    }
    stats.feeds++
    const diff = sameOutcome(reference, got)
    if (diff !== undefined) return `${how}: ${diff}`
  }
  // The messages, once: every split gave these same frames.
  const decoded: Message[] = []
  for (const [i, f] of reference.frames.entries()) {
    let m: Message
    try {
      m = P.decodeMessage(f.header)
    } catch (err) {
      if (err instanceof RangeError && /call stack/.test(err.message) && Object.hasOwn(KNOWN_ISSUES, 'deep-t')) {
        // validateMessage's error message stringifies a non-string `t`: String() of a deeply nested array overflows.
        known('deep-t')
        continue
      }
      if (!(err instanceof P.FsyncdError) || !P.isErrorCode(err.code)) return `frame ${i}: decodeMessage threw ${describe(err)}`
      if (!MESSAGE_CODES.has(err.code)) return `frame ${i}: decodeMessage threw FsyncdError(${err.code}), not MALFORMED/BAD_PATH`
      stats.messageErrors[err.code] = (stats.messageErrors[err.code] ?? 0) + 1
      if (c.kind === 'clean') return `frame ${i} of an unmutated stream refused: ${describe(err)}`
      continue
    }
    stats.accepted++
    decoded.push(m)
    // What the validators let through is a message: it re-encodes to itself, its paths are wire paths.
    try {
      const encoded = P.encodeMessage(m)
      // Both come out of the validators (same key order), so equal messages encode alike.
      const again = P.decodeMessage(encoded)
      if (!P.encodeMessage(again).equals(encoded) && canon(again) !== canon(m)) return `frame ${i}: accepted ${canon(m).slice(0, 120)} but it does not round-trip`
    } catch (err) {
      return `frame ${i}: accepted ${canon(m).slice(0, 120)} but its re-encoding is refused: ${describe(err)}`
    }
    const rec = m as unknown as Record<string, unknown>
    const paths = m.t === 'entries' ? m.entries.map((e) => e[0]) : m.t === 'files' ? m.files.map((f) => f[1]) : ['path', 'from', 'to'].map((k) => rec[k])
    for (const p of paths) if (typeof p === 'string' && P.pathProblem(p) !== undefined) return `frame ${i}: accepted a bad path ${JSON.stringify(p).slice(0, 80)}`
  }
  if (c.kind === 'clean') {
    if (reference.end !== 'ok') return `an unmutated stream ended ${reference.end}`
    if (decoded.length !== c.samples.length) return `${decoded.length} messages decoded from ${c.samples.length}`
    for (const [i, s] of c.samples.entries()) {
      if (canon(decoded[i]) !== canon(s.msg)) return `message ${i} (${s.msg.t}) decoded as ${canon(decoded[i]).slice(0, 120)}, sent ${canon(s.msg).slice(0, 120)}`
      if (!(reference.frames[i]?.payload.equals(s.payload) ?? false)) return `message ${i} (${s.msg.t}): payload differs`
    }
  }
  // validateMessage straight on JS values (what msgpackr can produce), not through bytes.
  const direct: unknown = r.chance(0.5) && c.samples.length > 0 ? { ...(c.samples[0] as Sample).msg, [r.pick(['id', 'path', 'mode', 'mtime', 'ranges', 'files', 'entries', 'hash'])]: r.pick([undefined, null, -0, NaN, 2 ** 53, 'x', [], {}, new Date(0), new Uint8Array(32), [[1, 2]]]) } : P.decodeMessage(P.encodeMessage({ t: 'ping' }))
  try {
    P.validateMessage(direct)
  } catch (err) {
    if (!(err instanceof P.FsyncdError) || !MESSAGE_CODES.has(err.code)) return `validateMessage(${canon(direct).slice(0, 100)}) threw ${describe(err)}`
  }
  // A failed decode must not leave msgpackr's shared state dirty: the next message decodes right.
  try {
    if (canon(P.decodeMessage(P.encodeMessage(CANARY))) !== canon(CANARY)) return 'the canary message decodes wrong after this case'
  } catch (err) {
    return `the canary message fails after this case: ${describe(err)}`
  }
  return undefined
}

function l1Replay (P: Protocol, seed: number, index: number, log: (s: string) => void): void {
  const c = buildL1Case(P, seed, index, () => {})
  log(`case 1:${index} (seed ${seed}): ${c.kind}, maxFrame ${c.maxFrame}, mutations [${c.applied.join(', ')}], ${c.samples.map((s) => s.msg.t).join(' ')}`)
  log(`stream: ${hexHead(c.stream, 2048)}`)
  try {
    const o = feed(P, c.maxFrame, [c.stream])
    log(`one chunk: ${o.frames.length} frames, end ${o.end}`)
    for (const [i, f] of o.frames.entries()) {
      let what: string
      try { what = canon(P.decodeMessage(f.header)).slice(0, 300) } catch (err) { what = describe(err) }
      log(`  frame ${i}: header ${f.header.length} B, payload ${f.payload.length} B: ${what}`)
    }
  } catch (problem) {
    log(`one chunk: ${problem instanceof Broken ? problem.message : describe(problem)}`)
  }
}

export interface L1Range {
  seed: number
  /** Cases first, first + step, …, below end. */
  first: number
  end: number
  step: number
  replay: boolean
}

export interface L1Report { cases: number, failed: number, lines: string[], known: Partial<Record<KnownIssue, number>>, stats: L1Stats }

export function emptyStats (): L1Stats {
  return { clean: 0, mutated: 0, noise: 0, feeds: 0, bytes: 0, frames: 0, accepted: 0, bigFrames: 0, unframeable: 0, frameErrors: {}, messageErrors: {}, mutations: {}, maxCaseMs: 0 }
}

/** Adds `b` into `a`: counts add up, the slowest case is the slower one. */
export function mergeStats (a: L1Stats, b: L1Stats): void {
  for (const k of ['clean', 'mutated', 'noise', 'feeds', 'bytes', 'frames', 'accepted', 'bigFrames', 'unframeable'] as const) a[k] += b[k]
  for (const k of ['frameErrors', 'messageErrors', 'mutations'] as const) for (const [c, n] of Object.entries(b[k])) a[k][c] = (a[k][c] ?? 0) + n
  a.maxCaseMs = Math.max(a.maxCaseMs, b.maxCaseMs)
}

/** Runs a range of layer-1 cases (in a worker thread, or here for a replay). */
export function runRange (P: Protocol, range: L1Range, log: (s: string) => void, progress?: (done: number) => void): L1Report {
  const stats = emptyStats()
  const known: Partial<Record<KnownIssue, number>> = {}
  const note = (k: KnownIssue): void => { known[k] = (known[k] ?? 0) + 1 }
  const failures = new Failures()
  let cases = 0
  let lastReport = performance.now()
  // Hundreds of thousands of FsyncdErrors: their stack traces are most of the cost, and no
  // failure line prints one (a replay keeps them).
  const stackTraceLimit = Error.stackTraceLimit
  if (!range.replay) Error.stackTraceLimit = 0
  try {
    for (let i = range.first; i < range.end; i += range.step) {
      const c0 = performance.now()
      let problem: string | undefined
      let c: L1Case | undefined
      try {
        c = buildL1Case(P, range.seed, i, (n) => { stats.unframeable += n })
        stats[c.kind as 'clean' | 'mutated' | 'noise']++
        for (const m of c.applied) stats.mutations[m] = (stats.mutations[m] ?? 0) + 1
        if (c.stream.length > MAX_FRAME) stats.bigFrames++
        problem = runL1Case(P, c, range.seed, i, stats, note)
      } catch (err) {
        problem = `the case itself threw ${describe(err)}`
      }
      cases++
      const ms = performance.now() - c0
      stats.maxCaseMs = Math.max(stats.maxCaseMs, ms)
      if (problem === undefined && ms > SLOW_CASE_MS) problem = `took ${ms.toFixed(0)} ms (a hang in the making; replay it alone to tell from a GC pause)`
      if (problem !== undefined) {
        failures.add(`fuzz in-process, seed ${range.seed} case 1:${i} (${c?.kind ?? '?'}${c !== undefined && c.applied.length > 0 ? `: ${c.applied.join('+')}` : ''}): ${problem}` +
          ` — replay: node bench/dist/run.js --only fuzz --seed ${range.seed} --fuzz-case 1:${i}`)
      }
      if (range.replay) l1Replay(P, range.seed, i, log)
      if (progress !== undefined && performance.now() - lastReport > 1000) {
        lastReport = performance.now()
        progress(cases)
      }
    }
  } finally {
    Error.stackTraceLimit = stackTraceLimit
  }
  return { cases, failed: failures.count, lines: failures.lines, known, stats }
}

export function l1Notes (stats: L1Stats): string[] {
  return [
    `${stats.clean.toLocaleString('en')} unmutated, ${stats.mutated.toLocaleString('en')} mutated, ${stats.noise.toLocaleString('en')} noise streams (${(stats.bytes / 2 ** 20).toFixed(0)} MiB); ${stats.feeds.toLocaleString('en')} feeds (every 2-way split of streams ≤ ${SHORT} B, random chunkings of longer ones); ${stats.frames.toLocaleString('en')} frames, ${stats.accepted.toLocaleString('en')} messages accepted; slowest case ${stats.maxCaseMs.toFixed(0)} ms`,
    `stream ends: ${JSON.stringify(stats.frameErrors)}; message refusals: ${JSON.stringify(stats.messageErrors)}; ${stats.unframeable} valid samples over the 65,535-byte header left out (4,096-entry listings, 1,024-file batches: senders split those by size)`,
  ]
}

export interface ChunkCost { chunks: number, feedMs: number, lastPushMs: number, heapPerByte: number }

/**
 * small-chunks, in process (deterministic, unlike TCP's coalescing): one frame pushed into a
 * FrameDecoder one byte per chunk. A decoder linear in its input takes a few ms for the push that
 * completes the frame and holds about a byte per byte.
 */
export function chunkCost (P: Protocol, chunks: number): ChunkCost {
  const d = new P.FrameDecoder(MAX_FRAME)
  const header = P.encodeMessage({ t: 'ping' })
  const frame = Buffer.concat([prefixOf(2 + header.length + chunks, header.length), header, Buffer.alloc(chunks, 0x61)])
  const heap0 = process.memoryUsage().heapUsed
  const t0 = performance.now()
  for (let i = 0; i < frame.length - 1; i++) d.push(frame.subarray(i, i + 1))
  const t1 = performance.now()
  const heapPerByte = (process.memoryUsage().heapUsed - heap0) / chunks
  const got = d.push(frame.subarray(frame.length - 1))
  if (got.length !== 1 || got[0]?.payload.length !== chunks) throw new Error(`chunkCost: ${got.length} frames out of one`)
  return { chunks, feedMs: t1 - t0, lastPushMs: performance.now() - t1, heapPerByte }
}
