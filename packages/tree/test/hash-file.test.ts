/**
 * hashFileStable against a file that another process appends to while it is read: the answer
 * is the hash of the bytes the file held when the read began, with the stat of then.
 */
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Prng } from '@fsyncd/testkit'
import { hashFileStable } from '../src/hash-file.js'

const dir = mkdtempSync(join(tmpdir(), 'fsyncd-hash-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

t.test('a file appended to while it is hashed', async (t) => {
  const file = join(dir, 'log.bin')
  writeFileSync(file, new Prng(1).bytes(80 * 1024 * 1024))
  // Another process appends 64 KiB every millisecond or so, until killed.
  const appender = spawn(process.execPath, ['-e', `
    const fs = require('node:fs'); const chunk = Buffer.alloc(65536, 7)
    const fd = fs.openSync(${JSON.stringify(file)}, 'a')
    const tick = () => { fs.writeSync(fd, chunk); setTimeout(tick, 1) }; tick()
  `], { stdio: 'ignore' })
  t.teardown(() => appender.kill('SIGKILL'))
  const results: Array<{ hash: Buffer, size: number }> = []
  let none = 0
  for (let i = 0; i < 6; i++) {
    const r = await hashFileStable(file, 1)
    if (r === undefined) none++
    else results.push({ hash: r.hash, size: r.stat.size })
  }
  appender.kill('SIGKILL')
  await new Promise((resolve) => appender.once('exit', resolve))
  const now = readFileSync(file)
  t.ok(statSync(file).size > 80 * 1024 * 1024, 'it grew meanwhile')
  t.equal(none, 0, 'every read gave an answer (it only grew)')
  for (const r of results) {
    t.same(r.hash, createHash('sha256').update(now.subarray(0, r.size)).digest(), `the hash of its first ${r.size} bytes`)
  }
})
