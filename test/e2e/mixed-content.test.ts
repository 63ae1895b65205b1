/**
 * Real mixed content: the repository's own sources and build output (TypeScript, JavaScript,
 * source maps), with binary files between them, pushed in one go. Small files travel many to a compressed frame, and libzstd cuts a frame's blocks where
 * its content changes: a server that held such a frame's block headers to the batch's exact size
 * refused most of these batches (a review found it; uniform generated text never showed it).
 */
import t from 'tap'
import { cpSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { diffTrees, pushOnce, REPO, seededBytes, startServer, tempDir } from '../helpers/fsyncd.js'

t.test('a tree of source files and binaries between them arrives whole', async (t) => {
  const src = tempDir()
  for (const pkg of readdirSync(join(REPO, 'packages'))) {
    for (const dir of ['src', 'test', 'dist']) {
      try { cpSync(join(REPO, 'packages', pkg, dir), join(src, pkg, dir), { recursive: true }) } catch {}
    }
  }
  // Binaries that still compress (6 bits a byte), so that they share frames with the text.
  for (let i = 0; i < 40; i++) writeFileSync(join(src, 'cli', `blob-${i}.bin`), seededBytes(900 + i, 2000 + i * 700).map((b) => b & 0x3f))
  const dest = tempDir()
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  const r = await pushOnce(src, server.port, tempDir(), {}, ['--json'])
  t.equal(r.code, 0, r.stderr.slice(-400))
  t.same(diffTrees(src, dest), [], 'the destination equals the source')
  t.equal(r.summary?.failures !== undefined ? (r.summary.failures as unknown[]).length : 0, 0, 'no path failed')
})
