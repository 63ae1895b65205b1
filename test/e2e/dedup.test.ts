/**
 * Content the server already holds is never uploaded again: counted by a TCP proxy between the
 * real CLI processes.
 */
import t from 'tap'
import { copyFileSync, mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CountingProxy, diffTrees, pushOnce, seededBytes, startServer, tempDir } from '../helpers/fsyncd.js'

t.test('a 20 MB copy and a rename of a 50 MB folder each cost under 1 KB on the wire', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  const state = tempDir()
  mkdirSync(join(src, 'a'))
  mkdirSync(join(src, 'project/sub'), { recursive: true })
  writeFileSync(join(src, 'a/big.bin'), seededBytes(11, 20 * 1024 * 1024))
  for (let i = 0; i < 50; i++) writeFileSync(join(src, `project/${i < 25 ? 'sub/' : ''}part-${i}.bin`), seededBytes(100 + i, 1024 * 1024))
  const server = await startServer(dest)
  const proxy = new CountingProxy(server.port)
  await proxy.listen()
  t.teardown(async () => { await proxy.close(); await server.stop() })

  let r = await pushOnce(src, proxy.port, state)
  t.equal(r.code, 0, r.stderr)
  t.ok(proxy.up > 60 * 1024 * 1024, `the initial sync carried the data (${proxy.up} bytes up)`)

  proxy.reset()
  mkdirSync(join(src, 'elsewhere'))
  copyFileSync(join(src, 'a/big.bin'), join(src, 'elsewhere/big-copy.bin'))
  r = await pushOnce(src, proxy.port, state)
  t.equal(r.code, 0, r.stderr)
  t.same(diffTrees(src, dest), [])
  t.ok(proxy.total < 1024, `copy of 20 MB: ${proxy.total} bytes on the wire (< 1 KB)`)

  proxy.reset()
  renameSync(join(src, 'project'), join(src, 'project-renamed'))
  r = await pushOnce(src, proxy.port, state)
  t.equal(r.code, 0, r.stderr)
  t.same(diffTrees(src, dest), [])
  t.ok(proxy.total < 1024, `rename of a 50 MB folder: ${proxy.total} bytes on the wire (< 1 KB)`)

  proxy.reset()
  renameSync(join(src, 'a/big.bin'), join(src, 'project-renamed/sub/big-moved.bin'))
  r = await pushOnce(src, proxy.port, state)
  t.equal(r.code, 0, r.stderr)
  t.same(diffTrees(src, dest), [])
  t.ok(proxy.total < 1024, `move of a 20 MB file into another folder: ${proxy.total} bytes on the wire`)

  // A cold client (no cached view) still uploads nothing the server has: it lists, then plans.
  proxy.reset()
  writeFileSync(join(src, 'note.txt'), 'tiny')
  r = await pushOnce(src, proxy.port, tempDir())
  t.equal(r.code, 0, r.stderr)
  t.same(diffTrees(src, dest), [])
  t.ok(proxy.up < 64 * 1024, `cold client over a 90 MB tree sends ${proxy.up} bytes up`)
})
