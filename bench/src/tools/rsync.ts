/**
 * rsync against an rsync daemon on 127.0.0.1 that the bench starts itself: one daemon for the
 * whole run, one module per destination (rsyncd re-reads its config on every connection, so
 * modules are added by rewriting the file). `use chroot = no` needs `munge symlinks = no`, or
 * symlink targets arrive prefixed with "/rsyncd-munged/".
 */
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { connect, createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { CountingProxy, type Link } from '../proxy.js'
import { type Child, sleep, spawnTracked, tail } from '../proc.js'
import type { SyncResult, Tool } from './tool.js'

/** The rsync version line, or undefined when rsync is not installed. */
export function rsyncVersion (): string | undefined {
  try {
    return execFileSync('rsync', ['--version'], { encoding: 'utf8' }).split('\n')[0]?.replace(/\s+/g, ' ').trim()
  } catch { return undefined }
}

/** Whether this rsync can fsync what it writes (`--fsync`, rsync 3.2.4 and later). */
export function rsyncCanFsync (): boolean {
  try {
    return execFileSync('rsync', ['--help'], { encoding: 'utf8' }).includes('--fsync')
  } catch { return false }
}

/**
 * How rsync runs: plain, with compression, or fsyncing every file it writes (as fsyncd does
 * before it acknowledges: the same durability, for a like-for-like time).
 */
export type RsyncVariant = 'plain' | 'z' | 'fsync'

async function freePort (): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

async function accepts (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

export class RsyncDaemon {
  readonly #conf: string
  readonly #modules = new Map<string, string>()
  #child: Child | undefined
  port = 0

  constructor (readonly work: string) {
    this.#conf = join(work, 'rsyncd.conf')
  }

  #write (): void {
    const root = process.getuid?.() === 0
    const lines = [
      `pid file = ${join(this.work, 'rsyncd.pid')}`,
      `log file = ${join(this.work, 'rsyncd.log')}`,
      'use chroot = no',
      'munge symlinks = no',
      'read only = no',
      'numeric ids = yes',
      ...(root ? ['uid = 0', 'gid = 0'] : []),
      '',
    ]
    for (const [name, path] of this.#modules) lines.push(`[${name}]`, `  path = ${path}`, '')
    writeFileSync(this.#conf, lines.join('\n'))
  }

  addModule (name: string, path: string): void {
    this.#modules.set(name, path)
    this.#write()
  }

  async start (): Promise<void> {
    this.#write()
    for (let attempt = 0; attempt < 5; attempt++) {
      this.port = await freePort()
      const child = spawnTracked('rsync', ['--daemon', '--no-detach', `--config=${this.#conf}`, '--address=127.0.0.1', `--port=${this.port}`])
      for (let i = 0; i < 200 && child.proc.exitCode === null; i++) {
        if (await accepts(this.port)) { this.#child = child; return }
        await sleep(10)
      }
      child.proc.kill('SIGTERM')
      await child.exited
    }
    throw new Error('rsync daemon did not start')
  }

  async stop (): Promise<void> {
    if (this.#child === undefined) return
    if (this.#child.proc.exitCode === null) this.#child.proc.kill('SIGTERM')
    await this.#child.exited
    this.#child = undefined
  }
}

/** Parses rsync --stats "Total bytes sent/received" (digits may carry commas). */
function statsOf (out: string): string | undefined {
  const n = (label: string): string | undefined => new RegExp(`${label}: ([\\d,.]+)`).exec(out)?.[1]?.replace(/,/g, '')
  const sent = n('Total bytes sent')
  const received = n('Total bytes received')
  return sent === undefined ? undefined : `sent ${sent} / recv ${received ?? '?'}`
}

let modules = 0

export class RsyncTool implements Tool {
  readonly name: string
  #src = ''
  #module = ''

  constructor (readonly daemon: RsyncDaemon, readonly variant: RsyncVariant) {
    this.name = variant === 'z' ? 'rsync -z' : variant === 'fsync' ? 'rsync --fsync' : 'rsync'
  }

  async open (src: string, dest: string): Promise<void> {
    this.#src = src
    this.#module = `m${modules++}`
    this.daemon.addModule(this.#module, dest)
  }

  async sync (link?: Link): Promise<SyncResult> {
    const proxy = new CountingProxy(this.daemon.port, link)
    try {
      const port = await proxy.listen()
      const args = ['-a', '--delete', '--no-whole-file', '--stats', ...(this.variant === 'z' ? ['-z'] : this.variant === 'fsync' ? ['--fsync'] : []), `${this.#src}/`, `rsync://127.0.0.1:${port}/${this.#module}/`]
      const t0 = performance.now()
      const child = spawnTracked('rsync', args)
      const code = await child.exited
      const wallMs = performance.now() - t0
      await proxy.drained()
      const error = code === 0 ? undefined : `rsync exited ${String(code)}: ${tail(child.stderr())}`
      return { tool: this.name, up: proxy.up, down: proxy.down, total: proxy.total, wallMs, clientRss: child.peakRss(), own: statsOf(child.stdout()), error }
    } finally {
      await proxy.close()
    }
  }

  async close (): Promise<void> {}
}
