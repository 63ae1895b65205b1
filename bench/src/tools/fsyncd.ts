/**
 * fsyncd as shipped: `fsyncd serve DEST` and `fsyncd push SRC --once` through the proxy. One
 * server and one proxy (so one host:port, which keys the client's cache) per destination, and
 * the client's state dir kept across the syncs of a scenario: the product's normal, warm
 * operation. The server's peak RSS is reset before each sync and read after it.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { CountingProxy, type Link } from '../proxy.js'
import { type Child, peakRssNow, resetPeakRss, spawnFsyncd, tail, waitFor } from '../proc.js'
import type { SyncResult, Tool } from './tool.js'

export interface FsyncdServer { child: Child, port: number, stop: () => Promise<number | undefined> }

export async function startServer (dest: string): Promise<FsyncdServer> {
  const child = spawnFsyncd(['serve', dest, '--port', '0', '--json', '--log-level', 'warn'], { env: { FSYNCD_TOKEN: undefined } })
  const port = await waitFor(() => {
    const line = child.stdout().split('\n').find((l) => l.includes('"listening"'))
    return line === undefined ? undefined : (JSON.parse(line) as { port: number }).port
  }, 15_000, 'fsyncd serve to listen', child)
  return {
    child,
    port,
    stop: async () => {
      if (child.proc.exitCode === null) child.proc.kill('SIGTERM')
      await child.exited
      return child.peakRss()
    },
  }
}

export interface PushOnce { code: number | null, wallMs: number, summary: Record<string, unknown> | undefined, stderr: string, clientRss: number | undefined }

export async function pushOnce (src: string, port: number, stateDir: string): Promise<PushOnce> {
  const t0 = performance.now()
  const child = spawnFsyncd(['push', src, `127.0.0.1:${port}`, '--once', '--json', '--state-dir', stateDir, '--log-level', 'warn'], { env: { FSYNCD_TOKEN: undefined } })
  const code = await child.exited
  const wallMs = performance.now() - t0
  let summary: Record<string, unknown> | undefined
  try { summary = JSON.parse(child.stdout().trim().split('\n').pop() ?? '') as Record<string, unknown> } catch { summary = undefined }
  return { code, wallMs, summary, stderr: child.stderr(), clientRss: child.peakRss() }
}

export class FsyncdTool implements Tool {
  readonly name = 'fsyncd'
  #src = ''
  #state = ''
  #server: FsyncdServer | undefined
  #proxy: CountingProxy | undefined

  async open (src: string, dest: string, work: string): Promise<void> {
    this.#src = src
    this.#state = join(work, 'state-fsyncd')
    await mkdir(this.#state, { recursive: true })
    this.#server = await startServer(dest)
    this.#proxy = new CountingProxy(this.#server.port)
    await this.#proxy.listen()
  }

  async sync (link?: Link): Promise<SyncResult> {
    const server = this.#server as FsyncdServer
    const proxy = this.#proxy as CountingProxy
    proxy.reset()
    proxy.link = link
    const pid = server.child.proc.pid
    const reset = resetPeakRss(pid)
    const r = await pushOnce(this.#src, proxy.port, this.#state)
    await proxy.drained()
    const s = r.summary ?? {}
    return {
      tool: this.name,
      up: proxy.up,
      down: proxy.down,
      total: proxy.total,
      wallMs: r.wallMs,
      clientRss: r.clientRss,
      serverRss: reset ? peakRssNow(pid) : undefined,
      own: `out ${String(s.wireBytesOut)} / in ${String(s.wireBytesIn)}`,
      detail: s,
      error: r.code === 0 ? undefined : `push exited ${String(r.code)}: ${tail(r.stderr)}`,
    }
  }

  async close (): Promise<void> {
    await this.#server?.stop()
    await this.#proxy?.close()
  }
}
