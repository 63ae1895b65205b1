/**
 * A first sync into an empty server sends entries while the scan still walks (client's
 * first-sync.ts). The CLI's `reconciling` log line says how many went out that way (`streamed`)
 * and how many the plan after the scan still had (`ops`).
 */
import t, { type Test } from 'tap'
import { chmodSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { diffTrees, pushOnce, type PushResult, seededBytes, type ServerProc, startServer, tempDir } from '../helpers/fsyncd.js'

/** The `reconciling` line of a push's log. */
function reconciling (r: PushResult): { ops: number, streamed?: number, entries: number } {
  for (const line of r.stderr.split('\n')) {
    if (!line.startsWith('{')) continue
    const o = JSON.parse(line) as { msg?: string, ops: number, streamed?: number, entries: number }
    if (o.msg === 'reconciling') return o
  }
  throw new Error(`no "reconciling" line in: ${r.stderr.slice(-500)}`)
}

function tree (src: string): void {
  mkdirSync(join(src, 'a', 'b', 'c'), { recursive: true })
  mkdirSync(join(src, 'empty', 'inner'), { recursive: true })
  for (let i = 0; i < 300; i++) writeFileSync(join(src, 'a', 'b', `f${i}.${i % 2 === 0 ? 'txt' : 'dat'}`), `file ${i}\n`.repeat(1 + (i % 50)))
  writeFileSync(join(src, 'a', 'b', 'c', 'big.bin'), seededBytes(1, 3 * 1024 * 1024))
  writeFileSync(join(src, 'a', 'copy-of-big.bin'), seededBytes(1, 3 * 1024 * 1024)) // the same content
  writeFileSync(join(src, 'run.sh'), '#!/bin/sh\necho hi\n')
  chmodSync(join(src, 'run.sh'), 0o755)
  symlinkSync('a/b/c/big.bin', join(src, 'latest'))
}

/** `tree` in a new source, pushed once into a new, empty destination. */
async function firstSync (t: Test): Promise<{ src: string, dest: string, state: string, server: ServerProc, r: PushResult }> {
  const src = tempDir()
  const dest = tempDir()
  const state = tempDir()
  tree(src)
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  const r = await pushOnce(src, server.port, state)
  t.equal(r.code, 0, r.stderr.slice(-500))
  return { src, dest, state, server, r }
}

t.test('a first sync into an empty server streams every entry while scanning, exactly', async (t) => {
  const { src, dest, state, server, r } = await firstSync(t)
  t.same(diffTrees(src, dest), [], 'the destination equals the source')
  const line = reconciling(r)
  t.equal(line.streamed, line.entries, `every entry went out during the scan (${line.streamed} of ${line.entries})`)
  t.equal(line.ops, 0, 'the plan after the scan had nothing left')
  t.equal(r.summary?.filesDeduplicated, 1, 'a file whose content went out before is a copy, as in the plan')

  writeFileSync(join(src, 'a', 'b', 'f7.dat'), 'changed')
  const again = await pushOnce(src, server.port, state)
  t.equal(again.code, 0, again.stderr.slice(-500))
  t.same(diffTrees(src, dest), [], 'a change after that syncs')
  t.equal(reconciling(again).streamed, undefined, 'into a server that holds something, nothing streams')
})

t.test('a server emptied behind the client: what changed here streams, the rest is planned', async (t) => {
  const { src, dest, state, server: first } = await firstSync(t)

  // Same address (the client's state is kept per server), an empty destination.
  const port = first.port
  await first.stop()
  for (const name of readdirSync(dest)) rmSync(join(dest, name), { recursive: true, force: true })
  const server = await startServer(dest, { port })
  t.teardown(() => server.stop())
  writeFileSync(join(src, 'a', 'b', 'c', 'new.txt'), 'new in a folder the scan finds unchanged')
  const r = await pushOnce(src, server.port, state)
  t.equal(r.code, 0, r.stderr.slice(-500))
  t.same(diffTrees(src, dest), [], 'the destination equals the source again')
  const line = reconciling(r)
  t.ok((line.streamed ?? 0) >= 4, `the new file streamed, its folders created first (${line.streamed} ops)`)
  t.ok(line.ops > 300, `the unchanged rest was planned after the scan (${line.ops} ops)`)
})
