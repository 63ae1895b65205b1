/**
 * Child processes with their output collected and their peak RSS measured.
 *
 * Peak RSS method: Node children get `--require rss-probe.cjs` (in NODE_OPTIONS), which writes VmHWM from
 * /proc/self/status when the process exits (exact peak). Every child is also polled every 20 ms
 * (VmHWM is a high-water mark, so polling only misses growth in the last 20 ms); the probe's
 * figure is used when present, else the last poll. A long-lived server is measured per sync
 * instead: its mark is reset before the sync (resetPeakRss) and read right after (peakRssNow).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const BENCH_DIST = dirname(fileURLToPath(import.meta.url))
export const REPO = join(BENCH_DIST, '..', '..')
let fsyncdBin = join(REPO, 'packages', 'cli', 'bin', 'fsyncd.js')

/** The CLI the bench runs: the repository's build, or the frozen copy set by useFsyncdBin. */
export function fsyncdBinPath (): string { return fsyncdBin }
export function useFsyncdBin (path: string): void { fsyncdBin = path }

/** Runs the CLI as users do: the launcher as a program (its first line is a shell's). */
export function spawnFsyncd (args: string[], opts: { env?: Record<string, string | undefined> } = {}): Child {
  return spawnTracked(fsyncdBinPath(), args, { ...opts, node: true })
}

/** The last lines of a child's stderr on one line, for an error message. */
export function tail (text: string, chars = 600): string {
  const flat = text.trim().split('\n').slice(-3).join(' | ')
  return flat.length > chars ? `…${flat.slice(-chars)}` : flat
}
const PROBE = join(BENCH_DIST, 'rss-probe.cjs')

let probeFiles = 0

export interface Child {
  proc: ChildProcess
  stdout: () => string
  stderr: () => string
  exited: Promise<number | null>
  /** Peak RSS in bytes once exited (undefined if it could not be read). */
  peakRss: () => number | undefined
}

/**
 * Resets the kernel's peak-RSS mark of a live process (`echo 5 > /proc/PID/clear_refs`, Linux ≥ 4.0),
 * so a later VmHWM reading covers only what ran since. False when the kernel refused.
 */
export function resetPeakRss (pid: number | undefined): boolean {
  if (pid === undefined) return false
  try { writeFileSync(`/proc/${pid}/clear_refs`, '5'); return true } catch { return false }
}

/** VmHWM of a live process, in bytes. */
export function peakRssNow (pid: number | undefined): number | undefined {
  const kib = pid === undefined ? undefined : hwmKiB(pid)
  return kib === undefined ? undefined : kib * 1024
}

function hwmKiB (pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? undefined : Number(m[1])
  } catch { return undefined }
}

export function spawnTracked (cmd: string, args: string[], opts: { env?: Record<string, string | undefined>, node?: boolean, cwd?: string } = {}): Child {
  const rssFile = opts.node === true ? join(tmpdir(), `fsyncd-bench-rss-${process.pid}-${probeFiles++}`) : undefined
  const probe = rssFile === undefined ? {} : { FSYNCD_BENCH_RSS_FILE: rssFile, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require "${PROBE}"`.trim() }
  const proc = spawn(cmd, args, {
    env: { ...process.env, ...opts.env, ...probe },
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: opts.cwd,
  })
  let out = ''
  let err = ''
  proc.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  let polled: number | undefined
  const poll = setInterval(() => {
    const v = proc.pid === undefined ? undefined : hwmKiB(proc.pid)
    if (v !== undefined) polled = Math.max(polled ?? 0, v)
  }, 20)
  let probed: number | undefined
  const exited = new Promise<number | null>((resolve) => {
    proc.on('error', (e) => { err += String(e); clearInterval(poll); resolve(-1) })
    proc.on('close', (code) => {
      clearInterval(poll)
      if (rssFile !== undefined) {
        try { probed = Number(readFileSync(rssFile, 'utf8')); rmSync(rssFile, { force: true }) } catch { probed = undefined }
      }
      resolve(code)
    })
  })
  const peakRss = (): number | undefined => {
    const kib = probed !== undefined && Number.isFinite(probed) && probed > 0 ? probed : polled
    return kib === undefined ? undefined : kib * 1024
  }
  return { proc, stdout: () => out, stderr: () => err, exited, peakRss }
}

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** Polls `fn` until it returns a value, the child exits, or `ms` pass. */
export async function waitFor<T> (fn: () => T | undefined, ms: number, what: string, child?: Child): Promise<T> {
  const deadline = Date.now() + ms
  let exited = false
  void child?.exited.then(() => { exited = true })
  for (;;) {
    const v = fn()
    if (v !== undefined) return v
    if (exited) throw new Error(`${what}: process exited: ${tail(child?.stderr() ?? '')}`)
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await sleep(10)
  }
}
