/** The Markdown the bench prints (and keeps in bench/README.md). Raw numbers go to the JSON. */
import { availableParallelism, cpus, release, totalmem } from 'node:os'
import type { ScenarioResult, ToolOutcome } from './compare.js'
import { type FuzzResult, KNOWN_ISSUES } from './fuzz-common.js'
import type { ChurnRun } from './churn.js'
import type { ScaleResult } from './scale.js'
import type { WatchResult } from './watch-latency.js'

export interface Machine { nproc: number, cpu: string, memory: string, node: string, os: string, rsync: string, date: string }

export function machine (rsync: string | undefined): Machine {
  return {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    node: process.version,
    os: `Linux ${release()}`,
    rsync: rsync ?? 'not installed',
    date: new Date().toISOString(),
  }
}

export function bytes (n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—'
  if (n < 1000) return `${n} B`
  const units = ['KB', 'MB', 'GB']
  let v = n / 1000
  let u = 0
  while (v >= 1000 && u < units.length - 1) { v /= 1000; u++ }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u] as string}`
}

export function ms (n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—'
  return n < 1000 ? `${n.toFixed(n < 10 ? 1 : 0)} ms` : `${(n / 1000).toFixed(2)} s`
}

export function mib (n: number | undefined): string {
  return n === undefined ? '—' : `${(n / 2 ** 20).toFixed(0)} MiB`
}

function ratio (a: number, b: number | undefined): string {
  if (b === undefined || b === 0) return '—'
  const r = a / b
  return `${r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r >= 0.01 ? r.toFixed(3) : r.toExponential(1)}×`
}

export function rsyncBest (outcomes: ToolOutcome[]): ToolOutcome | undefined {
  const rs = outcomes.filter((o) => (o.tool === 'rsync' || o.tool === 'rsync -z') && o.error === undefined)
  return rs.sort((a, b) => a.total - b.total)[0]
}

export function scenarioTable (results: ScenarioResult[]): string {
  const lines = [
    '| scenario | tool | up | down | total | wall time | (fastest–slowest) | client RSS | server RSS | ÷ rsync best | ÷ naive | tool\'s own count | check |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|',
  ]
  for (const s of results) {
    const best = rsyncBest(s.outcomes)
    const naive = s.outcomes.find((o) => o.tool === 'naive' && o.error === undefined)
    for (const o of s.outcomes) {
      const err = o.error !== undefined && o.wallMs === 0
      lines.push(`| ${s.name} | ${o.tool} | ${err ? '—' : bytes(o.up)} | ${err ? '—' : bytes(o.down)} | ${err ? '—' : `**${bytes(o.total)}**`} | ${err ? '—' : ms(o.wallMs)} | ${o.wallRangeMs === undefined ? '—' : `${ms(o.wallRangeMs[0])}–${ms(o.wallRangeMs[1])}`} | ${mib(o.clientRss)} | ${mib(o.serverRss)} | ${err ? '—' : ratio(o.total, best?.total)} | ${err ? '—' : ratio(o.total, naive?.total)} | ${o.own ?? '—'} | ${o.mismatch.length === 0 ? 'ok' : '**MISMATCH**'} |`)
    }
  }
  const legend = results.map((s) => `- **${s.name}**: ${s.description}`)
  return [...lines, '', ...legend].join('\n')
}

export function watchTable (w: WatchResult): string {
  return [
    '| saves | missed (>10 s) | p50 | p90 | p99 | max | mean | client RSS | server RSS | check |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    `| ${w.saves} | ${w.missed} | ${ms(w.p50Ms)} | ${ms(w.p90Ms)} | ${ms(w.p99Ms)} | ${ms(w.maxMs)} | ${ms(w.meanMs)} | ${mib(w.clientRss)} | ${mib(w.serverRss)} | ${w.mismatch.length === 0 ? 'ok' : '**MISMATCH**'} |`,
  ].join('\n')
}

export function churnTable (runs: ChurnRun[]): string {
  const lines = [
    '| seed | churn | changes | client killed midway | converged after the last change | check |',
    '|---:|---:|---:|---|---:|---|',
  ]
  for (const r of runs) {
    lines.push(`| ${r.seed} | ${r.seconds} s | ${r.changes} | ${r.killed ? 'yes (SIGKILL, restarted)' : 'no'} | ${r.convergedMs === undefined ? '**not within 30 s**' : ms(r.convergedMs)} | ${r.mismatch.length === 0 ? 'ok' : '**MISMATCH**'} |`)
  }
  return lines.join('\n')
}

export function scaleTable (s: ScaleResult): string {
  const lines = [
    `${s.files.toLocaleString('en')} files, ${bytes(s.bytes)} (built in ${ms(s.buildMs)})`,
    '',
    '| tool | initial sync | bytes | client RSS | server RSS | no-change resync | bytes | check |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
  ]
  for (const r of s.rows) {
    lines.push(`| ${r.tool} | ${ms(r.initial.wallMs)} | ${bytes(r.initial.total)} | ${mib(r.initial.clientRss)} | ${mib(r.initial.serverRss)} | ${ms(r.noop.wallMs)} | ${bytes(r.noop.total)} | ${r.mismatch.length === 0 ? 'ok' : '**MISMATCH**'} |`)
  }
  return lines.join('\n')
}

export function fuzzTable (f: FuzzResult): string {
  const lines = [
    `Seed ${f.seed}${f.strict ? ' (strict: known issues fail)' : ''}. Replay a failure with \`node bench/dist/run.js --only fuzz --seed ${f.seed} --fuzz-case L:I\`.`,
    '',
    '| layer | cases | failures | cases/s | time | max server RSS |',
    '|---|---:|---:|---:|---:|---:|',
  ]
  for (const l of f.layers) {
    lines.push(`| ${l.layer} | ${l.cases.toLocaleString('en')} | ${l.failures === 0 ? '0' : `**${l.failures}**`} | ${(l.cases / Math.max(l.ms, 1) * 1000).toFixed(0)} | ${ms(l.ms)} | ${l.maxRss === undefined ? '—' : mib(l.maxRss)} |`)
  }
  lines.push('')
  for (const l of f.layers) for (const n of l.notes) lines.push(`- ${l.layer.split(' ')[0] as string}: ${n}`)
  const known = Object.entries(f.known).filter(([, n]) => (n ?? 0) > 0)
  if (known.length > 0) {
    lines.push('', 'Known issues (reported, not fixed yet: KNOWN_ISSUES in src/fuzz-common.ts, repros in bench/repro/). Hits count the cases that met one, or that the live layer steered around it; not failures unless --fuzz-strict:')
    for (const [k, n] of known) lines.push(`- **${k}** (${String(n)} hits): ${KNOWN_ISSUES[k] ?? ''}`)
  }
  if (f.failures.length > 0) lines.push('', 'Failures:', ...f.failures.map((s) => `- ${s}`))
  return lines.join('\n')
}

export function machineLine (m: Machine): string {
  return `${m.date.slice(0, 16).replace('T', ' ')} UTC · ${m.nproc} cores (nproc) · ${m.cpu} · ${m.memory} · Node ${m.node} · ${m.os} · ${m.rsync}`
}
