/**
 * Fault-injection helpers for test/crash: a TCP proxy that cuts a connection after an exact
 * number of client→server bytes, a destination observer that reads every file as fast as it can
 * on its own thread and checks each against the versions allowed at its path, a bounded
 * `push --once` (a hang is reported, never waited out), a seeded PRNG, and a raw protocol
 * session for hostile-peer tests. Everything is real: sockets, processes, files.
 */
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import type { Duplex } from 'node:stream'
import { Worker } from 'node:worker_threads'
import { clientHandshake, Connection, isTempPath, MAX_FRAME, STATE_DIR, TEMP_NAME_PREFIX } from '@fsyncd/protocol'
import { Prng as TestkitPrng } from '@fsyncd/testkit'
import { LoopbackProxy, type Proc, run, type PushResult } from './fsyncd.js'

// ---- seeded randomness -----------------------------------------------------------------------

/** The testkit's seeded stream (same draws as before), with the half-open range the crash tests use. */
export class Prng extends TestkitPrng {
  /** Integer in [lo, hi). */
  int (lo: number, hi: number): number {
    return lo + this.below(hi - lo)
  }
}

export function sha256 (data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/** SHA-256 (hex) of every regular file under `root` (`.fsyncd` at the top left out). */
export function fileHashes (root: string): Map<string, string> {
  const out = new Map<string, string>()
  const walk = (rel: string): void => {
    for (const d of readdirSync(join(root, rel), { withFileTypes: true })) {
      const p = rel === '' ? d.name : `${rel}/${d.name}`
      if (p === '.fsyncd') continue
      if (d.isDirectory()) walk(p)
      else if (d.isFile()) out.set(p, sha256(readFileSync(join(root, p))))
    }
  }
  walk('')
  return out
}

/** The versions a reader may see at each path while `before` becomes `after`: either one. */
export function allowedVersions (before: Map<string, string>, after: Map<string, string>): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const m of [before, after]) {
    for (const [p, h] of m) {
      const list = out.get(p) ?? []
      if (!list.includes(h)) list.push(h)
      out.set(p, list)
    }
  }
  return out
}

/**
 * The server's temp files: those in DEST/.fsyncd/tmp (by name), and those beside their final names
 * anywhere in DEST (by path).
 */
export function tempFiles (dest: string): string[] {
  const out: string[] = []
  try {
    out.push(...readdirSync(join(dest, '.fsyncd', 'tmp')))
  } catch {}
  const walk = (rel: string): void => {
    for (const d of readdirSync(join(dest, rel), { withFileTypes: true })) {
      const p = rel === '' ? d.name : `${rel}/${d.name}`
      if (p === STATE_DIR) continue
      if (isTempPath(p)) out.push(p)
      else if (d.isDirectory()) walk(p)
    }
  }
  try {
    walk('')
  } catch {}
  return out
}

/** Open descriptors of a process (Linux /proc), or undefined where that cannot be read. */
export function openFds (pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined
  try {
    return readdirSync(`/proc/${pid}/fd`).length
  } catch {
    return undefined
  }
}

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

// ---- bounded push ---------------------------------------------------------------------------

export interface BoundedPush extends PushResult { hung: boolean, ms: number }

/**
 * `fsyncd push SRC 127.0.0.1:PORT --once --json`, killed with SIGKILL if it has not exited
 * within `timeoutMs` (then `hung` is true): a test of "fails, never hangs" must not hang itself.
 */
export async function pushBounded (src: string, port: number, stateDir: string, timeoutMs: number, env: Record<string, string | undefined> = {}, extra: string[] = []): Promise<BoundedPush> {
  return await spawnPush(src, port, stateDir, timeoutMs, env, extra).done
}

/** The same, started: `proc` to watch or kill it, `done` for its result. */
export function spawnPush (src: string, port: number, stateDir: string, timeoutMs: number, env: Record<string, string | undefined> = {}, extra: string[] = []): { proc: Proc, done: Promise<BoundedPush> } {
  const started = Date.now()
  const p = run(['push', src, `127.0.0.1:${port}`, '--once', '--json', '--state-dir', stateDir, '--log-level', 'warn', ...extra], env)
  let hung = false
  const timer = setTimeout(() => {
    hung = true
    p.proc.kill('SIGKILL')
  }, timeoutMs)
  const done = p.exited.then((code) => {
    clearTimeout(timer)
    const line = p.stdout().trim().split('\n').pop()
    let summary: Record<string, unknown> | undefined
    try { summary = line ? JSON.parse(line) as Record<string, unknown> : undefined } catch { summary = undefined }
    return { code, stdout: p.stdout(), stderr: p.stderr(), summary, hung, ms: Date.now() - started }
  })
  return { proc: p, done }
}

/** Descriptors of process `pid` open on files under `dir` (Linux /proc; [] where unreadable). */
export function fdsUnder (pid: number | undefined, dir: string): string[] {
  if (pid === undefined) return []
  const out: string[] = []
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`)
        if (target.startsWith(dir + '/')) out.push(target)
      } catch {}
    }
  } catch {}
  return out
}

// ---- a proxy that cuts ------------------------------------------------------------------------

export class CutRecord {
  /** Client→server bytes forwarded on this connection (exactly `limit` when it was cut). */
  forwarded = 0
  cut = false
  readonly chunks: Buffer[] = []
  /** The forwarded client→server bytes themselves (kept when the proxy's `record` is on). */
  get bytes (): Buffer {
    return Buffer.concat(this.chunks)
  }
}

/**
 * A TCP proxy between a client and the server that forwards exactly `limit` bytes from client
 * to server on each connection, then cuts both sockets (FIN with `mode: 'destroy'`, RST with
 * `mode: 'reset'`; after an RST the server may drop bytes still unread, so it sees at most
 * `limit`). Server→client bytes flow freely until the cut. `limit = Infinity` never cuts.
 */
export class CuttingProxy extends LoopbackProxy {
  limit = Infinity
  mode: 'destroy' | 'reset' = 'destroy'
  /** Keep the client→server bytes of each connection (to locate the cut in the frame stream). */
  record = false
  readonly connections: CutRecord[] = []

  protected relay (client: Socket, upstream: Socket): void {
    const limit = this.limit
    const mode = this.mode
    const rec = new CutRecord()
    this.connections.push(rec)
    client.pause()
    const cut = (): void => {
      if (mode === 'reset') {
        if (!client.destroyed) client.resetAndDestroy()
        if (!upstream.destroyed) upstream.resetAndDestroy()
      } else {
        client.destroy()
        upstream.destroy()
      }
    }
    upstream.once('connect', () => {
      if (limit <= 0) {
        rec.cut = true
        cut()
        return
      }
      client.resume()
    })
    client.on('data', (chunk: Buffer) => {
      if (rec.cut) return
      const room = limit - rec.forwarded
      const part = chunk.length < room ? chunk : chunk.subarray(0, room)
      rec.forwarded += part.length
      if (this.record) rec.chunks.push(Buffer.from(part))
      if (part.length < chunk.length || rec.forwarded >= limit) {
        rec.cut = true
        client.pause()
        // Cut once the last bytes are handed to the kernel, so the server gets exactly `limit`.
        if (part.length > 0) upstream.write(part, cut)
        else cut()
        return
      }
      if (!upstream.write(part)) {
        client.pause()
        upstream.once('drain', () => { if (!rec.cut) client.resume() })
      }
    })
    upstream.pipe(client)
  }
}

// ---- an observer of the destination ----------------------------------------------------------

export interface Violation { path: string, sha256: string, size: number, at: number }
export interface ObserverReport {
  /** Full passes over the tree. */
  scans: number
  /** Files read to the end and checked. */
  reads: number
  /** Files seen at a final name whose content is none of the versions allowed there. */
  violations: Violation[]
  /** Per path, the allowed versions actually seen (index into the allowed list). */
  seen: Record<string, number[]>
}

/**
 * Runs in a worker thread (plain JS, so it needs no loader): walks DEST again and again and reads
 * every regular file outside `.fsyncd` through one descriptor, hashing it, until told to stop.
 * The server's temp files (TEMP_NAME_PREFIX) are not at a final name: left alone. A file that
 * vanishes between listing and reading is skipped; every other file must hash to one
 * of the versions allowed at its path (a path with no allowed version at all is a violation).
 */
const OBSERVER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads')
const fs = require('node:fs')
const crypto = require('node:crypto')
const { root, allowed, flag, once } = workerData
const stop = new Int32Array(flag)
const buf = Buffer.allocUnsafe(1 << 20)
const report = { scans: 0, reads: 0, violations: [], seen: {} }
function check (rel) {
  let fd
  try { fd = fs.openSync(root + '/' + rel, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW) } catch { return }
  const h = crypto.createHash('sha256')
  let size = 0
  try {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null)
      if (n === 0) break
      h.update(buf.subarray(0, n))
      size += n
    }
  } catch { return } finally { fs.closeSync(fd) }
  const hex = h.digest('hex')
  report.reads++
  const ok = allowed[rel] || []
  const i = ok.indexOf(hex)
  if (i < 0) {
    if (report.violations.length < 50) report.violations.push({ path: rel, sha256: hex, size, at: Date.now() })
    return
  }
  const s = report.seen[rel] || (report.seen[rel] = [])
  if (!s.includes(i)) s.push(i)
}
function walk (rel) {
  let entries
  try { entries = fs.readdirSync(rel === '' ? root : root + '/' + rel, { withFileTypes: true }) } catch { return }
  for (const d of entries) {
    const p = rel === '' ? d.name : rel + '/' + d.name
    if (p === '.fsyncd' || d.name.toLowerCase().startsWith(${JSON.stringify(TEMP_NAME_PREFIX)})) continue
    if (d.isDirectory()) walk(p)
    else if (d.isFile()) check(p)
  }
}
do {
  walk('')
  report.scans++
} while (!once && Atomics.load(stop, 0) === 0)
parentPort.postMessage(report)
`

export interface Observer { stop: () => Promise<ObserverReport> }

/** Starts observing `root`; `stop()` ends the loop after its current pass and returns the report. */
export function observe (root: string, allowed: Map<string, string[]>, opts: { once?: boolean } = {}): Observer {
  const flag = new SharedArrayBuffer(4)
  const worker = new Worker(OBSERVER_SOURCE, { eval: true, workerData: { root, allowed: Object.fromEntries(allowed), flag, once: opts.once === true } })
  const done = new Promise<ObserverReport>((resolve, reject) => {
    worker.once('message', (r: ObserverReport) => resolve(r))
    worker.once('error', reject)
    worker.once('exit', (code) => reject(new Error(`observer exited with ${code} before reporting`)))
  })
  done.catch(() => {})
  return {
    stop: async () => {
      Atomics.store(new Int32Array(flag), 0, 1)
      const r = await done
      await worker.terminate()
      return r
    },
  }
}

/** One pass of the observer's check over `root`, now. */
export async function checkOnce (root: string, allowed: Map<string, string[]>): Promise<ObserverReport> {
  return await observe(root, allowed, { once: true }).stop()
}

// ---- raw protocol sessions ----------------------------------------------------------------------

/** A raw connection to the server, from `localAddress` (any 127.x.y.z works on Linux loopback). */
export async function openRaw (port: number, localAddress?: string): Promise<Connection> {
  const socket = connect({ port, host: '127.0.0.1', ...(localAddress !== undefined ? { localAddress } : {}) })
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  return new Connection(socket)
}

/** A raw connection past the handshake (server without token), `ready` read. */
export async function openSession (port: number): Promise<Connection> {
  const conn = await openRaw(port)
  await clientHandshake(conn, undefined)
  conn.maxFrame = MAX_FRAME
  await conn.expect('ready')
  return conn
}

/** Resolves with how long the socket took to close, in ms from `since`. */
export async function closedAfter (socket: Duplex, since: number): Promise<number> {
  if (socket.destroyed) return Date.now() - since
  await new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return Date.now() - since
}
