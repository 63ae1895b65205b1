/**
 * Churn: watch mode under seconds of random changes (testkit's churnStep: creates, writes,
 * appends, truncations, modes, renames away and back, deletes of files and folders, symlinks) as
 * fast as the disk takes them; then the destination must match the source, long before the hourly
 * rescan. Every other run kills the client with SIGKILL midway and starts it again on the same
 * state. The net that found the watcher's coalesced batches (a file created and removed within
 * one, after a scan had pushed it): ~1 run in 10 of 8 s failed before that fix.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { churnStep, Prng } from '@fsyncd/testkit'
import { sleep, spawnFsyncd, waitFor, type Child } from './proc.js'
import { startServer } from './tools/fsyncd.js'
import { compareTrees } from './verify.js'

export interface ChurnRun {
  seed: number
  seconds: number
  changes: number
  killed: boolean
  /** From the last change to a destination equal to the source; undefined: not within 30 s. */
  convergedMs: number | undefined
  mismatch: string[]
}

const CONVERGE_WITHIN_MS = 30_000

export async function churn (work: string, runs: number, seconds: number, firstSeed: number): Promise<ChurnRun[]> {
  const out: ChurnRun[] = []
  for (let i = 0; i < runs; i++) {
    const seed = firstSeed + i
    const killed = i % 2 === 1
    const dir = join(work, 'churn', String(seed))
    const src = join(dir, 'src')
    const dest = join(dir, 'dest')
    const state = join(dir, 'state')
    await mkdir(src, { recursive: true })
    await mkdir(dest, { recursive: true })
    const r = new Prng(seed)
    for (let n = 0; n < 50; n++) churnStep(src, r, n)
    const server = await startServer(dest)
    const watch = (): Child => spawnFsyncd(['push', src, `127.0.0.1:${server.port}`, '--json', '--state-dir', state, '--log-level', 'warn'], { env: { FSYNCD_TOKEN: undefined } })
    let client = watch()
    let changes = 50
    let convergedMs: number | undefined
    let mismatch: string[] = []
    try {
      await waitFor(() => client.stdout().includes('"synced"') ? true : undefined, 60_000, 'the watching client to finish its first sync', client)
      const start = performance.now()
      const end = start + seconds * 1000
      while (performance.now() < end) {
        churnStep(src, r, changes++)
        if (killed && client.proc.exitCode === null && performance.now() > start + seconds * 500) {
          client.proc.kill('SIGKILL')
          await client.exited
          client = watch()
        }
        if (r.chance(0.3)) await sleep(r.below(20))
      }
      const last = performance.now()
      while (performance.now() - last < CONVERGE_WITHIN_MS) {
        mismatch = await compareTrees(src, dest).catch((err: Error) => [`read while changing: ${err.message}`])
        if (mismatch.length === 0) {
          convergedMs = performance.now() - last
          break
        }
        await sleep(100)
      }
    } finally {
      client.proc.kill('SIGTERM')
      await client.exited
      await server.stop()
    }
    out.push({ seed, seconds, changes, killed, convergedMs, mismatch })
  }
  return out
}
