/**
 * Every change kind through the real CLI, `push --once`, checked entry by entry after each step.
 */
import t from 'tap'
import { chmodSync, mkdirSync, renameSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync, appendFileSync, copyFileSync } from 'node:fs'
import { join } from 'node:path'
import { diffTrees, pushOnce, seededBytes, startServer, tempDir } from '../helpers/fsyncd.js'

function makeTree (src: string): void {
  mkdirSync(join(src, 'docs/deep/deeper'), { recursive: true })
  mkdirSync(join(src, 'empty/nested-empty'), { recursive: true })
  mkdirSync(join(src, 'bin'))
  writeFileSync(join(src, 'docs/readme.txt'), 'hello\n'.repeat(1000))
  writeFileSync(join(src, 'docs/deep/deeper/notes.md'), '# notes\n')
  writeFileSync(join(src, 'with space.txt'), 'spaces in names\n')
  writeFileSync(join(src, 'ünïcödé 日本 🚀.txt'), 'unicode in names\n')
  writeFileSync(join(src, 'empty-file'), '')
  writeFileSync(join(src, 'bin/random.bin'), seededBytes(1, 300_000))
  writeFileSync(join(src, 'bin/large.bin'), seededBytes(2, 6 * 1024 * 1024 + 123))
  writeFileSync(join(src, 'bin/tool.sh'), '#!/bin/sh\necho hi\n')
  chmodSync(join(src, 'bin/tool.sh'), 0o755)
  chmodSync(join(src, 'docs/deep'), 0o750)
  utimesSync(join(src, 'docs/readme.txt'), new Date('2001-02-03T04:05:06.789Z'), new Date('2001-02-03T04:05:06.789Z'))
  symlinkSync('docs/readme.txt', join(src, 'link-inside'))
  symlinkSync('/etc/passwd', join(src, 'link-outside'))
  symlinkSync('../../..', join(src, 'docs/link-up'))
  symlinkSync('does-not-exist', join(src, 'dangling'))
}

t.test('push --once: initial sync, then every kind of change', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  const state = tempDir()
  makeTree(src)
  const server = await startServer(dest)
  t.teardown(() => server.stop())

  const sync = async (label: string): Promise<void> => {
    const r = await pushOnce(src, server.port, state)
    t.equal(r.code, 0, `${label}: exit 0 (${r.stderr.slice(-500)})`)
    t.same(diffTrees(src, dest), [], `${label}: destination equals source`)
  }

  await sync('initial')
  // Links are synced as links, never followed: the link to /etc/passwd is a link on the server.
  t.same(diffTrees(src, dest), [])

  writeFileSync(join(src, 'docs/readme.txt'), 'changed content\n')
  await sync('modify')

  appendFileSync(join(src, 'bin/random.bin'), seededBytes(3, 1000))
  await sync('append')

  unlinkSync(join(src, 'with space.txt'))
  rmSync(join(src, 'docs/deep'), { recursive: true })
  await sync('delete file and folder')

  mkdirSync(join(src, 'new/empty/folders'), { recursive: true })
  writeFileSync(join(src, 'new/file.txt'), 'new file\n')
  await sync('create folders and file')

  renameSync(join(src, 'new/file.txt'), join(src, 'new/renamed.txt'))
  renameSync(join(src, 'bin/random.bin'), join(src, 'new/empty/moved.bin'))
  await sync('rename and move files')

  renameSync(join(src, 'bin'), join(src, 'bin-renamed'))
  await sync('rename folder')

  renameSync(join(src, 'bin-renamed'), join(src, 'new/empty/folders/bin'))
  await sync('move folder into another')

  chmodSync(join(src, 'docs/readme.txt'), 0o600)
  chmodSync(join(src, 'new'), 0o700)
  utimesSync(join(src, 'empty-file'), new Date('1999-12-31T23:59:59Z'), new Date('1999-12-31T23:59:59Z'))
  await sync('mode bits and mtimes')

  unlinkSync(join(src, 'link-inside'))
  symlinkSync('new/renamed.txt', join(src, 'link-inside'))
  await sync('retarget a symlink')

  // A file becomes a folder and a folder becomes a file.
  unlinkSync(join(src, 'empty-file'))
  mkdirSync(join(src, 'empty-file'))
  writeFileSync(join(src, 'empty-file/inside.txt'), 'x')
  rmSync(join(src, 'empty'), { recursive: true })
  writeFileSync(join(src, 'empty'), 'now a file')
  await sync('type changes')

  // An editor's atomic save: write a temp file, rename it over the original.
  writeFileSync(join(src, 'docs/.readme.txt.tmp'), 'saved atomically\n')
  renameSync(join(src, 'docs/.readme.txt.tmp'), join(src, 'docs/readme.txt'))
  await sync('atomic save')

  copyFileSync(join(src, 'new/empty/moved.bin'), join(src, 'docs/copy.bin'))
  await sync('copy')

  rmSync(join(src, 'docs'), { recursive: true })
  rmSync(join(src, 'new'), { recursive: true })
  await sync('delete most of the tree')
})

t.test('a restarted client finds what changed while it was down, without a listing', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  const state = tempDir()
  makeTree(src)
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  let r = await pushOnce(src, server.port, state)
  t.equal(r.code, 0)
  t.equal(r.summary?.listed, false, 'an empty server equals an empty cached view: nothing to list')
  // Changed while no client ran, keeping size and mtime: only ctime/inode tell.
  const p = join(src, 'bin/tool.sh')
  writeFileSync(p, '#!/bin/sh\necho HI\n')
  utimesSync(p, new Date('2001-01-01T00:00:00Z'), new Date('2001-01-01T00:00:00Z'))
  r = await pushOnce(src, server.port, state)
  t.equal(r.code, 0)
  t.equal(r.summary?.listed, false, 'a warm client trusts its cached view (digests match)')
  t.same(diffTrees(src, dest), [])
  // Nothing changed: nothing but the handshake crosses the wire.
  r = await pushOnce(src, server.port, state)
  t.equal(r.summary?.ops, 0, 'no operations when nothing changed')
})

t.test('a server restarted on an existing destination keeps serving it', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  const state = tempDir()
  makeTree(src)
  let server = await startServer(dest)
  t.equal((await pushOnce(src, server.port, state)).code, 0)
  await server.stop()
  // Someone edits the destination while the server is down: the server sees it, the client's cache is stale.
  writeFileSync(join(dest, 'docs/readme.txt'), 'edited on the server')
  server = await startServer(dest)
  t.teardown(() => server.stop())
  const r = await pushOnce(src, server.port, tempDir())
  t.equal(r.code, 0)
  t.equal(r.summary?.listed, true, 'a cold client lists a non-empty server')
  t.same(diffTrees(src, dest), [], 'converged again')
})

t.test('listings and batches split by size: long paths, many files, a cold client', async (t) => {
  // 1,200 small files whose paths are ~110 bytes: one `files` batch of 1,024 of them, or one
  // `entries` message of 4,096, would not fit a frame header (65,535 bytes).
  const src = tempDir()
  const deep = join(src, 'a-folder-with-a-rather-long-name', 'and-another-level-of-nesting-below-it')
  mkdirSync(deep, { recursive: true })
  for (let i = 0; i < 1200; i++) writeFileSync(join(deep, `a-small-file-with-a-long-descriptive-name-${String(i).padStart(5, '0')}.txt`), `${i}\n`)
  const dest = tempDir()
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  const first = await pushOnce(src, server.port, tempDir())
  t.equal(first.code, 0, first.stderr)
  t.same(diffTrees(src, dest), [], 'the batches went through')

  // A client without a cached view (a new machine, a lost state folder) must list the server.
  writeFileSync(join(src, 'one-more.txt'), 'x')
  const cold = await pushOnce(src, server.port, tempDir())
  t.equal(cold.code, 0, cold.stderr)
  t.equal(cold.summary?.listed, true, 'it fetched the listing')
  t.equal(cold.summary?.filesSent, 1, 'and sent only the new file')
  t.same(diffTrees(src, dest), [])
})
