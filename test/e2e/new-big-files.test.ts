/**
 * New files of 1 MiB or more, as one push --once finds them: content the server holds goes as a
 * copy or a move, never as data, whatever its path; new content twice goes once; two server
 * files back to back cost no data. What the server ends with is the source.
 *
 * (Hashing new big files in the read that uploads them, as changed ones are, was tried and
 * left: such an upload has no name for its content until it ends, so one cut short cannot be
 * resumed, and the crash tests of resumed uploads of new files failed.)
 */
import t from 'tap'
import { copyFileSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { diffTrees, pushOnce, seededBytes, startServer, tempDir } from '../helpers/fsyncd.js'

const MB = 1024 * 1024

t.test('new big files: unique, copied, moved, twice, a concatenation', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  const state = tempDir()
  mkdirSync(join(src, 'a'))
  writeFileSync(join(src, 'a/one.bin'), seededBytes(1, 2 * MB))
  writeFileSync(join(src, 'a/two.bin'), seededBytes(2, 3 * MB))
  const server = await startServer(dest)
  t.teardown(async () => { await server.stop() })
  const base = await pushOnce(src, server.port, state)
  t.equal(base.code, 0)
  t.match(base.summary, { filesSent: 2 }, 'two new files: sent')

  // A copy of a server file (same size): deduplicated, not uploaded.
  copyFileSync(join(src, 'a/one.bin'), join(src, 'copy.bin'))
  let r = await pushOnce(src, server.port, state)
  t.match(r.summary, { filesSent: 0, filesDeduplicated: 1 }, 'a copy goes as a copy')
  t.ok((r.summary?.wireBytesOut as number) < 2000, `and costs no data (${String(r.summary?.wireBytesOut)} bytes)`)

  // A move of a big file: a move, not an upload.
  renameSync(join(src, 'a/two.bin'), join(src, 'moved.bin'))
  r = await pushOnce(src, server.port, state)
  t.match(r.summary, { filesSent: 0, filesDeduplicated: 0 }, 'a move is a move')
  t.ok((r.summary?.wireBytesOut as number) < 2000, `(${String(r.summary?.wireBytesOut)} bytes)`)

  // The same new content twice: one upload, one copy.
  const fresh = seededBytes(3, 2 * MB + 7)
  writeFileSync(join(src, 'x.bin'), fresh)
  writeFileSync(join(src, 'y.bin'), fresh)
  r = await pushOnce(src, server.port, state)
  t.match(r.summary, { filesSent: 1, filesDeduplicated: 1 }, 'two copies of a new file: one sent, one copied')

  // Two server files back to back: uploaded, all of it copies of the server's blocks.
  writeFileSync(join(src, 'both.bin'), Buffer.concat([readFileSync(join(src, 'a/one.bin')), readFileSync(join(src, 'moved.bin'))]))
  r = await pushOnce(src, server.port, state)
  t.match(r.summary, { filesSent: 1, literalBytes: 0 }, 'a concatenation of server files')
  t.ok((r.summary?.wireBytesOut as number) < 2000, `costs no data (${String(r.summary?.wireBytesOut)} bytes)`)

  t.same(diffTrees(src, dest), [], 'the server holds the source')
  const again = await pushOnce(src, server.port, state)
  t.match(again.summary, { ops: 0 }, 'and the next sync has nothing to do')
})
