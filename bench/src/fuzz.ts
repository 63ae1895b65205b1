/**
 * Wire fuzz: the bench-sized run of what packages/protocol/test does on a CI budget (frame.test.ts
 * and messages.test.ts fuzz ~400 seeded streams; here hundreds of thousands).
 *
 *   layer 1, in process (fuzz-l1.ts, on every core): FrameDecoder + decodeMessage/validateMessage
 *   layer 2, a live `fsyncd serve` over real TCP (fuzz-live.ts)
 *
 * Everything is seeded: a failure prints `seed S case L:I`, and `--seed S --fuzz-case L:I` replays
 * that one case (layer 1 prints its bytes and frames). Issues found and reported but not fixed are
 * listed in fuzz-common.ts (KNOWN_ISSUES): a run counts them and shows them, and `--fuzz-strict`
 * makes them failures (and lets the live layer send their triggers).
 */
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import { Worker } from 'node:worker_threads'
import { Failures, type FuzzResult, KNOWN_ISSUES, type KnownIssue, type LayerResult, type Protocol, tolerated } from './fuzz-common.js'
import { type ChunkCost, emptyStats, type L1Report, l1Notes, mergeStats, runRange } from './fuzz-l1.js'
import { liveFuzz, type LiveOptions } from './fuzz-live.js'

export interface FuzzOptions {
  quick: boolean
  seed: number
  strict: boolean
  /** Run this layer only (1 in-process, 2 live). */
  layer?: number | undefined
  /** Replay one case: [layer, index]. */
  only?: [number, number] | undefined
  /** The frozen build (product.ts): its protocol package is what layer 1 tests, its CLI what layer 2 runs. */
  bin: string
  protocolUrl: string
  work: string
  /** Keep the live layer's sandbox (DEST, jail, trees) for a look after the run. */
  keep: boolean
  log: (s: string) => void
}

/** A decoder linear in its input completes a 200 KB frame in a few ms, holding about a byte per byte. */
const CHUNK_PUSH_LIMIT_MS = 250
const CHUNK_HEAP_LIMIT = 32
/** The quadratic decoder takes from 2 s to 40 s here: the measure stops at this. */
const CHUNK_STOP_MS = 10_000

/** chunkCost in a worker thread, terminated when the completing push runs past CHUNK_STOP_MS. */
async function measureChunks (protocolUrl: string, chunks: number): Promise<ChunkCost> {
  const worker = new Worker(new URL('./fuzz-l1-worker.js', import.meta.url), { workerData: { protocolUrl, chunks } })
  let timer: NodeJS.Timeout | undefined
  try {
    return await new Promise<ChunkCost>((resolve, reject) => {
      timer = setTimeout(() => resolve({ chunks, feedMs: NaN, lastPushMs: Infinity, heapPerByte: NaN }), CHUNK_STOP_MS)
      worker.on('message', (m: { cost?: ChunkCost }) => { if (m.cost !== undefined) resolve(m.cost) })
      worker.on('error', reject)
    })
  } finally {
    clearTimeout(timer)
    await worker.terminate()
  }
}

// ---- entry --------------------------------------------------------------------------------------

/** Layer 1 on every core: case i runs on worker i mod W, so each case's result is the same whatever W. */
async function inProcess (P: Protocol, opts: FuzzOptions, known: Partial<Record<KnownIssue, number>>, failures: Failures): Promise<LayerResult> {
  const cases = opts.quick ? 6_000 : 250_000
  const t0 = performance.now()
  let reports: L1Report[]
  if (opts.only !== undefined) {
    reports = [runRange(P, { seed: opts.seed, first: opts.only[1], end: opts.only[1] + 1, step: 1, replay: true }, opts.log)]
  } else {
    const workers = Math.max(1, Math.min(4, availableParallelism()))
    const done = new Array<number>(workers).fill(0)
    let lastLog = performance.now()
    reports = await Promise.all(Array.from({ length: workers }, async (_, w) => await new Promise<L1Report>((resolve, reject) => {
      const worker = new Worker(new URL('./fuzz-l1-worker.js', import.meta.url), {
        workerData: { protocolUrl: opts.protocolUrl, range: { seed: opts.seed, first: w, end: cases, step: workers, replay: false } },
      })
      worker.on('message', (m: { progress?: number, report?: L1Report }) => {
        if (m.report !== undefined) resolve(m.report)
        if (m.progress !== undefined) {
          done[w] = m.progress
          if (performance.now() - lastLog > 5000) {
            lastLog = performance.now()
            opts.log(`fuzz in-process: ${done.reduce((a, b) => a + b, 0)}/${cases} cases`)
          }
        }
      })
      worker.on('error', reject)
      worker.on('exit', (code) => { if (code !== 0) reject(new Error(`fuzz worker ${w} exited ${code}`)) })
    })))
  }
  const stats = emptyStats()
  let count = 0
  let failed = 0
  for (const r of reports) {
    mergeStats(stats, r.stats)
    count += r.cases
    failed += r.failed
    for (const line of r.lines) failures.add(line)
    failures.count += r.failed - r.lines.length
    for (const [k, n] of Object.entries(r.known)) known[k] = (known[k] ?? 0) + (n ?? 0)
  }
  const notes = l1Notes(stats)
  if (opts.only === undefined) {
    // small-chunks: a frame of 200,000 one-byte chunks, in a worker stopped after CHUNK_STOP_MS.
    const cost = await measureChunks(opts.protocolUrl, 200_000)
    const bad = cost.lastPushMs > CHUNK_PUSH_LIMIT_MS || cost.heapPerByte > CHUNK_HEAP_LIMIT
    const took = Number.isFinite(cost.lastPushMs) ? `${cost.lastPushMs.toFixed(0)} ms` : `over ${CHUNK_STOP_MS / 1000} s (stopped)`
    notes.push(`a frame pushed in ${cost.chunks.toLocaleString('en')} one-byte chunks: ${Number.isFinite(cost.feedMs) ? cost.feedMs.toFixed(0) : '?'} ms to feed, ${took} for the push that completes it (limit ${CHUNK_PUSH_LIMIT_MS} ms), ${Number.isFinite(cost.heapPerByte) ? `~${cost.heapPerByte.toFixed(0)}` : '?'} B of heap per byte held (limit ${CHUNK_HEAP_LIMIT})${bad ? ': small-chunks' : ''}`)
    if (bad && tolerated('small-chunks', opts.strict)) known['small-chunks'] = (known['small-chunks'] ?? 0) + 1
    else if (bad) {
      failures.add(`fuzz in-process, seed ${opts.seed}: a frame in ${cost.chunks} one-byte chunks cost ${took} to complete and ${cost.heapPerByte.toFixed(0)} B per byte`)
      failed++
    }
  }
  return { layer: 'in-process (FrameDecoder + decodeMessage)', cases: count, failures: failed, ms: performance.now() - t0, notes, stats: stats as unknown as Record<string, unknown> }
}

export async function fuzz (opts: FuzzOptions): Promise<FuzzResult> {
  const P = await import(opts.protocolUrl) as Protocol
  const failures = new Failures()
  const known: Partial<Record<KnownIssue, number>> = {}
  const layers: LayerResult[] = []
  const runs = (layer: number): boolean => (opts.layer === undefined || opts.layer === layer) && (opts.only === undefined || opts.only[0] === layer || (layer === 2 && opts.only[0] === 3))
  if (runs(1)) {
    opts.log(`fuzz in-process: seed ${opts.seed}`)
    layers.push(await inProcess(P, opts, known, failures))
  }
  if (runs(2)) {
    const live: LiveOptions = { ...opts, connections: opts.quick ? 300 : 3000 }
    layers.push(await liveFuzz(P, live, known, failures))
  }
  if (opts.strict) {
    for (const [k, n] of Object.entries(known)) if ((n ?? 0) > 0) failures.add(`known issue ${k} hit ${n} times (--fuzz-strict): ${KNOWN_ISSUES[k] ?? ''}`)
  }
  return { seed: opts.seed, strict: opts.strict, layers, failures: failures.lines.length < failures.count ? [...failures.lines, `… ${failures.count - failures.lines.length} more`] : failures.lines, known }
}

