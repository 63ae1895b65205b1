/**
 * `npm run bench`: bytes on the wire and time of fsyncd beside rsync and a naive upload, plus
 * watch latency, (full runs) churn under watch mode, a many-files scale run, (full runs) the
 * delta engine's speed, and a fuzz of the wire protocol in process and against a live server.
 *
 *   node bench/dist/run.js [--quick] [--reps N] [--only initial,edit,…,watch,churn,scale,engine,fuzz] [--json-out FILE] [--keep]
 *                          [--link MBIT/RTT_MS]
 *                          [--seed N] [--fuzz-case L:I] [--fuzz-layer 1|2] [--fuzz-strict]
 *
 * Prints Markdown on stdout (progress on stderr), writes JSON to bench/results/<timestamp>.json,
 * and a full unfiltered run refreshes the table in bench/README.md. Exits 1 on a correctness
 * mismatch (or a tool failure); never on speed.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'
import { runScenario, type ScenarioResult, type ToolOutcome } from './compare.js'
import { BENCH_DIST, useFsyncdBin } from './proc.js'
import { freezeProduct, type Product } from './product.js'
import type { FuzzResult } from './fuzz-common.js'
import { fuzz } from './fuzz.js'
import { type Link, parseLink } from './proxy.js'
import { churnTable, fuzzTable, machine, machineLine, scaleTable, scenarioTable, watchTable } from './report.js'
import { scale, type ScaleResult } from './scale.js'
import { FULL, QUICK, SCENARIOS } from './scenarios.js'
import { FsyncdTool } from './tools/fsyncd.js'
import { FsyncdWatchingTool } from './tools/fsyncd-watching.js'
import { NaiveTool } from './tools/naive.js'
import { rsyncCanFsync, RsyncDaemon, RsyncTool, type RsyncVariant, rsyncVersion } from './tools/rsync.js'
import type { Tool } from './tools/tool.js'
import { watchLatency, type WatchResult } from './watch-latency.js'
import { churn, type ChurnRun } from './churn.js'

const EXTRAS = ['watch', 'churn', 'scale', 'engine', 'fuzz']
const BENCH_DIR = join(BENCH_DIST, '..')

interface Args {
  quick: boolean
  /** Runs of each scenario; the table shows each tool's run of median wall time. */
  reps: number | undefined
  only: string[] | undefined
  jsonOut: string | undefined
  keep: boolean
  /** The fuzz's seed (random when not given; always printed). */
  seed: number
  /** Replay one fuzz case, [layer, index]. */
  fuzzCase: [number, number] | undefined
  /** Known issues count as failures, and the live fuzz sends their triggers. */
  fuzzStrict: boolean
  /** Run one fuzz layer only: 1 in-process, 2 live. */
  fuzzLayer: number | undefined
  /** The scenarios' measured syncs go over this link (every tool alike). */
  link: Link | undefined
}

function parseArgs (argv: string[]): Args {
  const args: Args = { quick: false, reps: undefined, only: undefined, jsonOut: undefined, keep: false, seed: Math.floor(Math.random() * 2 ** 31), fuzzCase: undefined, fuzzStrict: false, fuzzLayer: undefined, link: undefined }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string
    const value = (): string => {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i]
      if (v === undefined || v === '') throw new Error(`${a} needs a value`)
      return v
    }
    if (a === '--quick') args.quick = true
    else if (a === '--keep') args.keep = true
    else if (a.startsWith('--reps')) {
      const v = Number(value())
      if (!Number.isInteger(v) || v < 1 || v > 15) throw new Error('--reps needs an integer in 1..15')
      args.reps = v
    }
    else if (a.startsWith('--only')) args.only = value().split(',').map((s) => s.trim()).filter((s) => s !== '')
    else if (a.startsWith('--json-out')) args.jsonOut = value()
    else if (a.startsWith('--link')) args.link = parseLink(value())
    else if (a === '--fuzz-strict') args.fuzzStrict = true
    else if (a.startsWith('--fuzz-layer')) {
      const v = value()
      if (v !== '1' && v !== '2') throw new Error('--fuzz-layer is 1 (in-process) or 2 (live server)')
      args.fuzzLayer = Number(v)
      args.only ??= ['fuzz']
    } else if (a.startsWith('--seed')) {
      const v = Number(value())
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error('--seed needs an integer in 0..2^32-1')
      args.seed = v
    } else if (a.startsWith('--fuzz-case')) {
      const m = /^([123]):(\d+)$/.exec(value())
      if (m === null) throw new Error('--fuzz-case needs LAYER:INDEX, e.g. 1:4711 (1 in-process, 2 live, 3 live stall)')
      args.fuzzCase = [Number(m[1]), Number(m[2])]
      args.only ??= ['fuzz']
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(`usage: node bench/dist/run.js [--quick] [--reps N] [--only ${[...SCENARIOS.map((s) => s.name), ...EXTRAS].join(',')}] [--json-out FILE] [--keep] [--link MBIT/RTT_MS] [--seed N] [--fuzz-case L:I] [--fuzz-layer 1|2] [--fuzz-strict]\n`)
      process.exit(0)
    } else throw new Error(`unknown argument ${a}`)
  }
  const known = new Set([...SCENARIOS.map((s) => s.name), ...EXTRAS])
  for (const n of args.only ?? []) if (!known.has(n)) throw new Error(`--only: unknown scenario ${n} (known: ${[...known].join(', ')})`)
  return args
}

const log = (s: string): void => { process.stderr.write(`[bench] ${s}\n`) }

/** Runs the other helper's engine bench (bench/dist/engine.js) if it was built; its stdout is Markdown. */
async function engineBench (): Promise<{ output: string, code: number | null, ms: number } | undefined> {
  const script = join(BENCH_DIST, 'engine.js')
  if (!existsSync(script)) return undefined
  const t0 = performance.now()
  return await new Promise((resolve) => {
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    const timer = setTimeout(() => child.kill('SIGTERM'), 10 * 60_000)
    child.on('close', (code) => { clearTimeout(timer); resolve({ output: out.trim(), code, ms: performance.now() - t0 }) })
  })
}

/**
 * One result of several runs of a scenario: per tool, the run of median wall time (its bytes,
 * memory and timing together); every run's mismatches, so a wrong destination in any run fails.
 */
function medianRun (runs: ScenarioResult[]): ScenarioResult {
  const first = runs[0] as ScenarioResult
  if (runs.length === 1) return first
  const outcomes = first.outcomes.map((_, i) => {
    const all = runs.map((r) => r.outcomes[i] as ToolOutcome).sort((a, b) => a.wallMs - b.wallMs)
    const median = all[Math.floor(all.length / 2)] as ToolOutcome
    const mismatch = [...new Set(all.flatMap((o) => o.mismatch))]
    return { ...median, mismatch, wallRangeMs: [(all[0] as ToolOutcome).wallMs, (all[all.length - 1] as ToolOutcome).wallMs] as [number, number] }
  })
  return { ...first, outcomes, setupMs: runs.reduce((n, r) => n + r.setupMs, 0), runs: runs.length }
}

async function updateReadme (markdown: string): Promise<void> {
  const path = join(BENCH_DIR, 'README.md')
  const start = '<!-- bench:results:start -->'
  const end = '<!-- bench:results:end -->'
  const text = await readFile(path, 'utf8').catch(() => '')
  const i = text.indexOf(start)
  const j = text.indexOf(end)
  if (i < 0 || j < i) { log('bench/README.md has no results markers; not updated'); return }
  await writeFile(path, `${text.slice(0, i + start.length)}\n${markdown}\n${text.slice(j)}`)
  log('bench/README.md updated')
}

async function main (): Promise<number> {
  const args = parseArgs(process.argv.slice(2))
  const t0 = performance.now()
  const wanted = (name: string): boolean => args.only === undefined || args.only.includes(name)
  const sizes = args.quick ? QUICK : FULL
  // One wall-time sample swung ±20 % here from run to run (a shared VM): three, and the median.
  const reps = args.reps ?? (args.quick ? 1 : 3)
  const rsync = rsyncVersion()
  const m = machine(rsync)
  const work = await mkdtemp(join(tmpdir(), 'fsyncd-bench-'))
  const product: Product = await freezeProduct(work)
  useFsyncdBin(product.bin)
  log(`${args.quick ? 'quick' : 'full'} run in ${work}; ${machineLine(m)}`)
  log(`fsyncd at ${product.commit}${product.dirty.length > 0 ? ` + ${product.dirty.length} uncommitted changes` : ''}, frozen copy of the build in ${product.bin}`)
  if (args.link !== undefined) log(`the scenarios' measured syncs go over a link of ${args.link.mbit} Mbit/s each way, ${args.link.rttMs} ms round trip`)
  if (rsync === undefined) log('rsync is not installed (apt-get install -y rsync): rsync rows are left out')

  let daemon: RsyncDaemon | undefined
  const scenarios: ScenarioResult[] = []
  let watch: WatchResult | undefined
  let churned: ChurnRun[] | undefined
  let scaled: ScaleResult | undefined
  let engine: Awaited<ReturnType<typeof engineBench>>
  let fuzzed: FuzzResult | undefined
  try {
    if (rsync !== undefined) {
      daemon = new RsyncDaemon(work)
      await daemon.start()
    }
    // With --fsync when this rsync has it: fsyncd's durability, at rsync's speed.
    const variants: RsyncVariant[] = rsyncCanFsync() ? ['plain', 'z', 'fsync'] : ['plain', 'z']
    const rsyncs = (only: RsyncVariant[]): Tool[] => daemon === undefined ? [] : variants.filter((v) => only.includes(v)).map((v) => new RsyncTool(daemon as RsyncDaemon, v))
    for (const sc of SCENARIOS.filter((s) => wanted(s.name))) {
      log(`scenario ${sc.name}: ${sc.describe(sizes)}`)
      const runs: ScenarioResult[] = []
      for (let rep = 0; rep < reps; rep++) runs.push(await runScenario(sc, sizes, work, () => [new FsyncdTool(), ...(sc.fromEmpty === true ? [] : [new FsyncdWatchingTool()]), ...rsyncs(['plain', 'z', 'fsync']), new NaiveTool()], args.link))
      scenarios.push(medianRun(runs))
    }
    if (wanted('watch')) {
      const saves = args.quick ? 60 : 300
      log(`watch latency: ${saves} saves`)
      watch = await watchLatency(work, saves)
    }
    if (!args.quick && wanted('churn')) {
      log(`churn: 4 runs of 15 s, seeds ${args.seed}…${args.seed + 3}`)
      churned = await churn(work, 4, 15, args.seed)
    }
    if (wanted('scale')) {
      const files = args.quick ? 10_000 : 100_000
      log(`scale: ${files} files`)
      scaled = await scale(work, files, () => [new FsyncdTool(), ...rsyncs(['plain', 'fsync'])])
    }
    if (wanted('fuzz')) {
      log(`fuzz: seed ${args.seed}${args.fuzzCase !== undefined ? `, replaying case ${args.fuzzCase.join(':')}` : ''}${args.fuzzStrict ? ', strict' : ''}`)
      fuzzed = await fuzz({
        quick: args.quick,
        seed: args.seed,
        strict: args.fuzzStrict,
        only: args.fuzzCase,
        layer: args.fuzzLayer,
        bin: product.bin,
        // The frozen copy's protocol package, the one its server runs.
        protocolUrl: pathToFileURL(join(product.root, 'packages', 'protocol', 'dist', 'index.js')).href,
        work,
        keep: args.keep,
        log,
      })
    }
    if (!args.quick && wanted('engine')) {
      log('engine: node bench/dist/engine.js')
      engine = await engineBench()
      if (engine === undefined) log('bench/dist/engine.js is absent: engine speed skipped')
      else if (engine.code !== 0) log(`engine bench exited ${String(engine.code)}`)
    }
  } finally {
    await daemon?.stop()
    if (!args.keep) await rm(work, { recursive: true, force: true })
  }

  const totalMs = performance.now() - t0
  const failures = [
    ...scenarios.flatMap((s) => s.outcomes.filter((o) => o.mismatch.length > 0).map((o) => `${s.name} / ${o.tool}: ${o.mismatch.join('; ')}`)),
    ...(watch !== undefined && watch.mismatch.length > 0 ? [`watch: ${watch.mismatch.join('; ')}`] : []),
    ...(churned?.filter((r) => r.mismatch.length > 0).map((r) => `churn seed ${r.seed}: ${r.mismatch.join('; ')}`) ?? []),
    ...(scaled?.rows.filter((r) => r.mismatch.length > 0).map((r) => `scale / ${r.tool}: ${r.mismatch.join('; ')}`) ?? []),
    ...(fuzzed?.failures.map((f) => `fuzz: ${f}`) ?? []),
  ]
  const version = `fsyncd ${product.commit}${product.dirty.length > 0 ? ` with uncommitted changes in ${product.dirty.length} files` : ''}`
  const sections = [`fsyncd bench (${args.quick ? 'quick' : 'full'}) — ${version} — ${machineLine(m)}`]
  if (scenarios.length > 0) {
    const runs = scenarios[0]?.runs ?? 1
    const over = args.link === undefined ? '' : `, over a shaped link of ${args.link.mbit} Mbit/s and ${args.link.rttMs} ms round trip`
    sections.push(`### Bytes on the wire, one measured sync per tool${over}${runs > 1 ? ` (each scenario run ${runs} times; the row is the tool's median run)` : ''}\n\n` + scenarioTable(scenarios))
  }
  if (watch !== undefined) sections.push('### Watch latency (close() → file at its final name on the server, content checked)\n\n' + watchTable(watch))
  if (churned !== undefined) sections.push('### Churn (watch mode under random changes, then an exact comparison)\n\n' + churnTable(churned))
  if (scaled !== undefined) sections.push('### Scale\n\n' + scaleTable(scaled))
  if (fuzzed !== undefined) sections.push('### Wire fuzz (in process, and against a live server over TCP)\n\n' + fuzzTable(fuzzed))
  if (engine !== undefined) sections.push('### Delta engine (bench/dist/engine.js)\n\n' + (engine.output === '' ? `(no output; exit ${String(engine.code)})` : engine.output))
  sections.push(`Total bench time ${(totalMs / 1000).toFixed(1)} s.`)
  const markdown = sections.join('\n\n')
  process.stdout.write(markdown + '\n')

  const json = { machine: m, product: { commit: product.commit, dirty: product.dirty }, quick: args.quick, only: args.only ?? null, link: args.link ?? null, sizes, totalMs, scenarios, watch: watch ?? null, churn: churned ?? null, scale: scaled ?? null, engine: engine ?? null, fuzz: fuzzed ?? null, failures }
  const out = args.jsonOut ?? join(BENCH_DIR, 'results', `${m.date.replace(/[:.]/g, '-')}.json`)
  await mkdir(join(out, '..'), { recursive: true })
  await writeFile(out, JSON.stringify(json, null, 2) + '\n')
  log(`JSON written to ${out}`)
  if (!args.quick && args.only === undefined && args.link === undefined) {
    if (failures.length === 0) await updateReadme(markdown)
    else log('bench/README.md left as it was: this run had correctness failures')
  }

  if (failures.length > 0) {
    process.stderr.write(`\nCORRECTNESS FAILURES (${failures.length}):\n${failures.map((f) => `  ${f}`).join('\n')}\n`)
    return 1
  }
  return 0
}

main().then((code) => { process.exitCode = code }, (err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`)
  process.exitCode = 2
})
