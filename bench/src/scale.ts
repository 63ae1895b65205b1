/**
 * Scale: a tree of many small files (100k full, 10k quick; 100 per folder, 100–1,100 B, half
 * text). Initial sync into an empty destination, then a second sync with nothing changed, by
 * fsyncd and by rsync (no -z), each through its own counting proxy.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { between, binary, rng, text } from './data.js'
import type { SyncResult, Tool } from './tools/tool.js'
import { compareTrees, snapshot } from './verify.js'

export interface ScaleRow { tool: string, initial: SyncResult, noop: SyncResult, mismatch: string[] }
export interface ScaleResult { files: number, bytes: number, buildMs: number, rows: ScaleRow[] }

export async function scale (work: string, files: number, makeTools: () => Tool[]): Promise<ScaleResult> {
  const dir = join(work, 'scale')
  const src = join(dir, 'src')
  const t0 = performance.now()
  const r = rng(500)
  let bytes = 0
  for (let d = 0; d * 100 < files; d++) {
    const folder = join(src, `d${String(d).padStart(4, '0')}`)
    await mkdir(folder, { recursive: true })
    const writes: Promise<void>[] = []
    for (let i = d * 100; i < Math.min(files, (d + 1) * 100); i++) {
      const size = between(r, 100, 1100)
      bytes += size
      writes.push(writeFile(join(folder, `f${i}.${i % 2 === 0 ? 'txt' : 'bin'}`), i % 2 === 0 ? text(i, size) : binary(i, size)))
    }
    await Promise.all(writes)
  }
  const buildMs = performance.now() - t0
  const want = await snapshot(src)
  const rows: ScaleRow[] = []
  for (const tool of makeTools()) {
    const dest = join(dir, `dest-${tool.name.replace(/[^a-z0-9]+/gi, '-')}`)
    await mkdir(dest, { recursive: true })
    await tool.open(src, dest, dir)
    const initial = await tool.sync()
    const noop = await tool.sync()
    const mismatch = await compareTrees(want, dest)
    for (const e of [initial.error, noop.error]) if (e !== undefined) mismatch.unshift(`tool failed: ${e}`)
    rows.push({ tool: tool.name, initial, noop, mismatch })
    process.stderr.write(`[bench] scale ${tool.name}: initial ${initial.wallMs.toFixed(0)} ms, no-op ${noop.wallMs.toFixed(0)} ms${mismatch.length > 0 ? ` MISMATCH ${mismatch.join('; ')}` : ''}\n`)
    await tool.close()
  }
  // Removed only now: on an ext4 without a journal (this machine's), creating a file searches
  // past the inodes deleted in the last minutes (ext4's recently_deleted()), so a tool run just
  // after another's files were removed could pay for them: 20,000 files took fsyncd 3.5 s into
  // a fresh folder and 6.8-7.5 s right after such a removal (rsync: 0.4 s, and 0.4-0.9 s).
  await rm(dir, { recursive: true, force: true })
  return { files, bytes, buildMs, rows }
}
