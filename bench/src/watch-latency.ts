/**
 * Watch latency: `fsyncd push` in watch mode; the bench saves a small file (open, write, close)
 * a few hundred times, one after the other, 20–50 ms apart, rotating over 10 files. Latency runs
 * from the moment close() returned to the moment the destination's file, at its final name, holds
 * the new content. The destination is polled by reading the file every 1 ms (so figures are
 * ±1 ms; fs.watch was not used because the server's temp-then-rename would need a content check
 * anyway). The server makes a file durable (fsync) before the rename, so "visible" is "durable".
 */
import { mkdir, open, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { between, put, rng, text } from './data.js'
import { sleep, spawnFsyncd, waitFor } from './proc.js'
import { startServer } from './tools/fsyncd.js'
import { compareTrees } from './verify.js'

export interface WatchResult {
  saves: number
  missed: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  maxMs: number
  meanMs: number
  clientRss: number | undefined
  serverRss: number | undefined
  mismatch: string[]
}

export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] as number
}

export async function watchLatency (work: string, saves: number): Promise<WatchResult> {
  const dir = join(work, 'watch')
  const src = join(dir, 'src')
  const dest = join(dir, 'dest')
  await mkdir(dest, { recursive: true })
  for (let i = 0; i < 20; i++) await put(join(src, 'notes', `note-${i}.txt`), text(900 + i, 2000))
  const server = await startServer(dest)
  const client = spawnFsyncd(['push', src, `127.0.0.1:${server.port}`, '--json', '--state-dir', join(dir, 'state'), '--log-level', 'warn'], { env: { FSYNCD_TOKEN: undefined } })
  const latencies: number[] = []
  let missed = 0
  try {
    await waitFor(() => client.stdout().includes('"synced"') ? true : undefined, 60_000, 'the watching client to finish its first sync', client)
    const r = rng(77)
    for (let i = 0; i < saves; i++) {
      const name = `notes/note-${i % 10}.txt`
      const content = Buffer.concat([Buffer.from(`save ${i}\n`), text(10_000 + i, between(r, 200, 4000))])
      const fh = await open(join(src, name), 'w')
      await fh.write(content)
      await fh.close()
      const t0 = performance.now()
      const target = join(dest, name)
      let arrived = false
      while (performance.now() - t0 < 10_000) {
        const got = await readFile(target).catch(() => undefined)
        if (got !== undefined && got.equals(content)) { arrived = true; break }
        await sleep(1)
      }
      if (arrived) latencies.push(performance.now() - t0)
      else missed++
      await sleep(between(r, 20, 50))
    }
    // Let a missed save settle before the final check (the client also rescans).
    if (missed > 0) await sleep(3000)
  } finally {
    client.proc.kill('SIGTERM')
    await client.exited
  }
  const serverRss = await server.stop()
  const mismatch = await compareTrees(src, dest)
  const sorted = [...latencies].sort((a, b) => a - b)
  return {
    saves,
    missed,
    p50Ms: percentile(sorted, 0.5),
    p90Ms: percentile(sorted, 0.9),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted[sorted.length - 1] ?? NaN,
    meanMs: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
    clientRss: client.peakRss(),
    serverRss,
    mismatch,
  }
}
