/**
 * fsyncd as a daemon: `fsyncd serve DEST` and a watching `fsyncd push SRC` (no --once) through
 * the proxy, running since the base sync. What a user of the daemon waits for: from the moment
 * the change is made (the scenario's writes returned) until the server made it durable (the
 * client's `synced` event after which the destination equals the source). Bytes are all the
 * proxy counted from the change on, intermediate syncs included (a file the watcher saw while it
 * was being written is sent again).
 *
 * The watcher sees the change as it is made, so this tool keeps its own copy of the source
 * (built by the same seeded scenario) and makes the change there itself (see Tool.measure).
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { CountingProxy, type Link } from '../proxy.js'
import { type Child, peakRssNow, resetPeakRss, sleep, spawnFsyncd, tail, waitFor } from '../proc.js'
import { compareTrees, snapshot } from '../verify.js'
import { type FsyncdServer, startServer } from './fsyncd.js'
import type { SyncResult, Tool } from './tool.js'

/** How long a measured change may take to arrive before the tool gives up. */
const MEASURE_TIMEOUT_MS = 300_000

export class FsyncdWatchingTool implements Tool {
  readonly name = 'fsyncd, watching'
  readonly ownSource = true
  #src = ''
  #dest = ''
  #server: FsyncdServer | undefined
  #proxy: CountingProxy | undefined
  #client: Child | undefined
  /** Each `synced` event of the client, with the time its line arrived. */
  readonly #events: Array<{ at: number, summary: Record<string, unknown> }> = []

  async open (src: string, dest: string, work: string): Promise<void> {
    this.#src = src
    this.#dest = dest
    const state = join(work, 'state-fsyncd-watching')
    await mkdir(state, { recursive: true })
    this.#server = await startServer(dest)
    this.#proxy = new CountingProxy(this.#server.port)
    await this.#proxy.listen()
    const client = spawnFsyncd(['push', src, `127.0.0.1:${this.#proxy.port}`, '--json', '--state-dir', state, '--log-level', 'warn'], { env: { FSYNCD_TOKEN: undefined } })
    this.#client = client
    let pending = ''
    client.proc.stdout?.on('data', (d: Buffer) => {
      const at = performance.now()
      pending += d.toString()
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const line = pending.slice(0, nl)
        pending = pending.slice(nl + 1)
        try {
          const summary = JSON.parse(line) as Record<string, unknown>
          if (summary.event === 'synced') this.#events.push({ at, summary })
        } catch {}
      }
    })
  }

  /** The base sync: the reconcile the client starts with. */
  async sync (): Promise<SyncResult> {
    const proxy = this.#proxy as CountingProxy
    const t0 = performance.now()
    const first = await waitFor(() => this.#events[0], MEASURE_TIMEOUT_MS, 'the watching client to finish its first sync', this.#client)
    return { tool: this.name, up: proxy.up, down: proxy.down, total: proxy.total, wallMs: first.at - t0 }
  }

  async measure (change: () => Promise<void>, link?: Link): Promise<SyncResult> {
    const server = this.#server as FsyncdServer
    const proxy = this.#proxy as CountingProxy
    const client = this.#client as Child
    proxy.reset()
    proxy.link = link
    const resetClient = resetPeakRss(client.proc.pid)
    const resetServer = resetPeakRss(server.child.proc.pid)
    const before = this.#events.length
    await change()
    const t0 = performance.now()
    // Done at the first event after which the destination is the source (hashed once, at the
    // first event: the source holds still from now on). A tree the server is renaming into may
    // fail to read: looked at again 20 ms later. Events that came during a comparison are looked
    // at again, so the time credited is never that of an event before the data was all there.
    const deadline = Date.now() + MEASURE_TIMEOUT_MS
    let want: Map<string, string> | undefined
    let looked = before
    let done: { at: number } | undefined
    while (done === undefined) {
      if (client.proc.exitCode !== null) throw new Error(`push exited ${String(client.proc.exitCode)}: ${tail(client.stderr())}`)
      if (Date.now() > deadline) throw new Error('timed out: the change to arrive')
      if (this.#events.length === looked) { await sleep(5); continue }
      const seen = this.#events.length
      want ??= await snapshot(this.#src)
      const same = await compareTrees(want, this.#dest, 1).then((m) => m.length === 0, () => undefined)
      if (same === true && this.#events.length === seen) done = this.#events[seen - 1]
      else if (same === false) looked = seen
      else if (same === undefined) await sleep(20)
    }
    await proxy.drained()
    const counts = this.#events.slice(before).map((e) => e.summary)
    const sum = (k: string): number => counts.reduce((n, s) => n + Number(s[k] ?? 0), 0)
    return {
      tool: this.name,
      up: proxy.up,
      down: proxy.down,
      total: proxy.total,
      wallMs: done.at - t0,
      clientRss: resetClient ? peakRssNow(client.proc.pid) : undefined,
      serverRss: resetServer ? peakRssNow(server.child.proc.pid) : undefined,
      own: `out ${sum('wireBytesOut')} / in ${sum('wireBytesIn')} (${counts.length} sync${counts.length === 1 ? '' : 's'})`,
      detail: { syncs: counts },
      error: client.proc.exitCode === null ? undefined : `push exited ${String(client.proc.exitCode)}: ${tail(client.stderr())}`,
    }
  }

  async close (): Promise<void> {
    const client = this.#client
    if (client !== undefined && client.proc.exitCode === null) {
      client.proc.kill('SIGTERM')
      await client.exited
    }
    await this.#server?.stop()
    await this.#proxy?.close()
  }
}
