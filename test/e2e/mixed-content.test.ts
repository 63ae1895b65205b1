/**
 * Real mixed content: the repository's own sources and build output (TypeScript, JavaScript,
 * source maps), with binary files between them, pushed in one go. Small files travel many to a compressed frame, and libzstd cuts a frame's blocks where
 * its content changes: a server that held such a frame's block headers to the batch's exact size
 * refused most of these batches (a review found it; uniform generated text never showed it).
 */
import t from 'tap'
import { cpSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CountingProxy, diffTrees, pushOnce, REPO, seededBytes, startServer, tempDir } from '../helpers/fsyncd.js'

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

t.test('small files of many kinds side by side travel in batches of one kind, which compress like one file', async (t) => {
  // 30 kinds (more than have a batch of their own), side by side in each folder: f000.k00,
  // f000.k01, ... Each kind's files share a 3 KiB body of 6-bit noise (compressible, but only by
  // finding the body again), each file with 200 bytes of its own.
  const src = tempDir()
  const kinds = 30
  const perKind = 40
  for (let i = 0; i < perKind; i++) {
    const dir = join(src, `d${i % 4}`)
    mkdirSync(dir, { recursive: true })
    for (let k = 0; k < kinds; k++) {
      const body = seededBytes(7000 + k, 3072).map((b) => 48 + (b & 0x3f))
      const own = seededBytes(9000 + i * kinds + k, 200).map((b) => 48 + (b & 0x3f))
      writeFileSync(join(dir, `f${String(i).padStart(3, '0')}.k${String(k).padStart(2, '0')}`), Buffer.concat([body, own]))
    }
  }
  const dest = tempDir()
  const server = await startServer(dest)
  const proxy = new CountingProxy(server.port)
  await proxy.listen()
  t.teardown(async () => { await proxy.close(); await server.stop() })
  const r = await pushOnce(src, proxy.port, tempDir())
  t.equal(r.code, 0, r.stderr.slice(-400))
  t.same(diffTrees(src, dest), [], 'the destination equals the source')
  // What is new: 30 bodies and 1,200 own parts, 6 bits a byte: ~249 KB. In the walk's order a
  // 256 KiB batch holds ~80 files of every kind and pays for every body again: 1.30 MB went so.
  // By kind, 16 kinds have batches of their own (one body each) and 14 share one: 526 KB.
  t.ok(proxy.up < 800_000, `${proxy.up} bytes up (walk order: 1.30 MB)`)
})

t.test('thousands of tiny files of many kinds side by side all arrive', async (t) => {
  // 4,800 files of ~20 bytes, 8 kinds in turn: every kind's batch fills by count, not size, so
  // gathered files alone could fill the client's window of 4,096 operations in flight (a review
  // found the push waiting forever for acks of files it had not sent).
  const src = tempDir()
  for (let i = 0; i < 600; i++) {
    for (let k = 0; k < 8; k++) writeFileSync(join(src, `f${String(i).padStart(3, '0')}.k${k}`), `file ${i} of kind ${k}\n`)
  }
  const dest = tempDir()
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  const r = await pushOnce(src, server.port, tempDir())
  t.equal(r.code, 0, r.stderr.slice(-400))
  t.same(diffTrees(src, dest), [], 'the destination equals the source')
})
