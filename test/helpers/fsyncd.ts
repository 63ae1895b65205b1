/**
 * Test helpers that drive the real product: the built CLI as child processes, real loopback
 * sockets, real temp folders, and a byte-counting TCP proxy. Trees are compared with a walker
 * written here on purpose, independent of the scanner under test.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { lstatSync, readdirSync, readFileSync, readlinkSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
/** The program users run: the launcher of the bundled CLI (`npm run build` makes it). */
export const BIN = join(REPO, 'packages', 'cli', 'bin', 'fsyncd.js')

const made: string[] = []
// Every temp folder a test file made goes when its process ends (tap runs one process per file):
// a full run writes gigabytes that would otherwise pile up in /tmp.
process.on('exit', () => {
  for (const dir of made) {
    try { rmSync(dir, { recursive: true, force: true }) } catch {}
  }
})

export function tempDir (prefix = 'fsyncd-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  made.push(dir)
  return dir
}

export interface Proc {
  proc: ChildProcess
  stdout: () => string
  stderr: () => string
  exited: Promise<number | null>
}

export function run (args: string[], env: Record<string, string | undefined> = {}): Proc {
  const proc = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, FSYNCD_TOKEN: undefined, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  proc.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)))
  return { proc, stdout: () => out, stderr: () => err, exited }
}

export interface ServerProc extends Proc { port: number, stop: () => Promise<number | null> }

/** Starts `fsyncd serve DEST --port 0 --json` and waits for its listening line. */
export async function startServer (dest: string, opts: { env?: Record<string, string | undefined>, args?: string[], port?: number } = {}): Promise<ServerProc> {
  const p = run(['serve', dest, '--port', String(opts.port ?? 0), '--json', ...(opts.args ?? [])], opts.env)
  const port = await waitFor(() => {
    const line = p.stdout().split('\n').find((l) => l.includes('"listening"'))
    return line === undefined ? undefined : (JSON.parse(line) as { port: number }).port
  }, 15_000, () => `server did not start: ${p.stderr()}`, p.exited)
  const stop = async (): Promise<number | null> => {
    if (p.proc.exitCode === null) p.proc.kill('SIGTERM')
    return await p.exited
  }
  return { ...p, port, stop }
}

/**
 * `fsyncd serve DEST` and a watching `fsyncd push SRC` (debug logs, a fresh state dir, `extra`
 * arguments), both stopped when the test ends; resolves once the first sync is done.
 */
export async function startWatching (t: { teardown: (fn: () => Promise<void>) => void }, src: string, dest: string, extra: string[] = []): Promise<{ server: ServerProc, client: Proc }> {
  const server = await startServer(dest)
  const client = run(['push', src, `127.0.0.1:${server.port}`, '--state-dir', tempDir(), '--log-level', 'debug', ...extra])
  t.teardown(async () => {
    client.proc.kill('SIGKILL')
    await server.stop()
  })
  await waitFor(() => client.stdout().includes('in sync'), 15_000, () => `initial sync: ${client.stderr()}`, client.exited)
  return { server, client }
}

export interface PushResult { code: number | null, stdout: string, stderr: string, summary: Record<string, unknown> | undefined }

/** Runs `fsyncd push SRC 127.0.0.1:PORT --once --json` to completion. */
export async function pushOnce (src: string, port: number, stateDir: string, env: Record<string, string | undefined> = {}, extra: string[] = []): Promise<PushResult> {
  const p = run(['push', src, `127.0.0.1:${port}`, '--once', '--json', '--state-dir', stateDir, ...extra], env)
  const code = await p.exited
  const line = p.stdout().trim().split('\n').pop()
  let summary: Record<string, unknown> | undefined
  try { summary = line ? JSON.parse(line) as Record<string, unknown> : undefined } catch { summary = undefined }
  return { code, stdout: p.stdout(), stderr: p.stderr(), summary }
}

export async function waitFor<T> (fn: () => T | undefined | Promise<T | undefined>, timeoutMs: number, what: () => string = () => 'condition', abort?: Promise<unknown>): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let aborted = false
  void abort?.then(() => { aborted = true })
  for (;;) {
    const v = await fn()
    if (v !== undefined && v !== false) return v
    if (aborted) throw new Error(`process exited while waiting: ${what()}`)
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

export interface Snap { type: 'file' | 'dir' | 'link', mode?: number, size?: number, sha256?: string, mtime?: number, target?: string }

/** path → what matters of it; `.fsyncd` at the root is left out. */
export function snapshot (root: string): Map<string, Snap> {
  const out = new Map<string, Snap>()
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const p = rel === '' ? name : `${rel}/${name}`
      if (p === '.fsyncd') continue
      const st = lstatSync(join(root, p))
      if (st.isSymbolicLink()) out.set(p, { type: 'link', target: readlinkSync(join(root, p)) })
      else if (st.isDirectory()) {
        out.set(p, { type: 'dir', mode: st.mode & 0o7777 })
        walk(p)
      } else if (st.isFile()) {
        out.set(p, { type: 'file', mode: st.mode & 0o7777, size: st.size, sha256: createHash('sha256').update(readFileSync(join(root, p))).digest('hex'), mtime: Math.round(st.mtimeMs) })
      }
    }
  }
  walk('')
  return out
}

/** Differences between two trees, as readable lines (empty when identical). */
export function diffTrees (src: string, dest: string): string[] {
  const a = snapshot(src)
  const b = snapshot(dest)
  const out: string[] = []
  for (const [p, e] of a) {
    const o = b.get(p)
    if (o === undefined) out.push(`missing ${p}`)
    else if (JSON.stringify(e) !== JSON.stringify(o)) out.push(`differs ${p}: ${JSON.stringify(e)} vs ${JSON.stringify(o)}`)
  }
  for (const p of b.keys()) if (!a.has(p)) out.push(`extra ${p}`)
  return out
}

/**
 * A TCP proxy on 127.0.0.1 to `targetPort`: subclasses decide how bytes go across (`relay`);
 * this part owns listening, the sockets, and tearing it all down.
 */
export abstract class LoopbackProxy {
  port = 0
  readonly #server: Server
  readonly #sockets = new Set<Socket>()

  constructor (readonly targetPort: number) {
    this.#server = createServer({ noDelay: true }, (client) => {
      const upstream = connect({ port: targetPort, host: '127.0.0.1', noDelay: true })
      this.#sockets.add(client)
      this.#sockets.add(upstream)
      const end = (): void => {
        client.destroy()
        upstream.destroy()
        this.#sockets.delete(client)
        this.#sockets.delete(upstream)
      }
      for (const s of [client, upstream]) {
        s.on('error', end)
        s.on('close', end)
      }
      this.relay(client, upstream)
    })
  }

  protected abstract relay (client: Socket, upstream: Socket): void

  async listen (): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    this.port = (this.#server.address() as AddressInfo).port
    return this.port
  }

  async close (): Promise<void> {
    for (const s of this.#sockets) s.destroy()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

/** A TCP proxy that counts the bytes it forwards in each direction. */
export class CountingProxy extends LoopbackProxy {
  up = 0
  down = 0

  protected relay (client: Socket, upstream: Socket): void {
    client.on('data', (d: Buffer) => { this.up += d.length })
    upstream.on('data', (d: Buffer) => { this.down += d.length })
    client.pipe(upstream)
    upstream.pipe(client)
  }

  reset (): void {
    this.up = 0
    this.down = 0
  }

  get total (): number {
    return this.up + this.down
  }
}

/** Deterministic bytes (xorshift32), so every run writes the same trees. */
export function seededBytes (seed: number, length: number): Buffer {
  const words = new Uint32Array(Math.ceil(length / 4))
  let x = seed >>> 0 || 1
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    words[i] = x
  }
  return Buffer.from(words.buffer, 0, length)
}
