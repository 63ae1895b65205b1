/**
 * BlockSums: the server's background work on what landed gives way to sessions at work.
 */
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { SIG_BLOCK_SIZE } from '@fsyncd/protocol'
import { BlockSums } from '../src/block-sums.js'

const QUIET = 200

function setup (t: Tap.Test, size: number): { dir: string, file: string, hash: Buffer, sumsFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fsyncd-sums-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const data = randomBytes(size)
  const file = join(dir, 'content.bin')
  writeFileSync(file, data)
  const hash = createHash('sha256').update(data).digest()
  return { dir, file, hash, sumsFile: join(dir, 'sums', `${hash.toString('hex')}-${SIG_BLOCK_SIZE}`) }
}

t.test('background sums wait until no session has been at work for the quiet time', async (t) => {
  const { dir, file, hash, sumsFile } = setup(t, 1 << 20)
  const sums = new BlockSums(join(dir, 'sums'), async () => file, QUIET)
  t.teardown(async () => await sums.idle())
  sums.schedule(hash, 1 << 20)
  for (let i = 0; i < 20; i++) { // 1 s of a session at work, 5 quiet times
    await sleep(QUIET / 4)
    sums.busy()
  }
  t.notOk(existsSync(sumsFile), 'nothing computed while a session is at work')
  const quietFrom = performance.now()
  while (!existsSync(sumsFile) && performance.now() - quietFrom < 5000) await sleep(10)
  t.ok(existsSync(sumsFile), 'computed once the server is quiet')
  t.ok(performance.now() - quietFrom >= QUIET * 0.9, 'and not before the quiet time')
})

t.test('a background computation stops when a session starts work, and starts over once quiet', async (t) => {
  const { dir, file, hash, sumsFile } = setup(t, 4 << 20)
  let locates = 0
  const sums: BlockSums = new BlockSums(join(dir, 'sums'), async () => {
    if (++locates === 1) sums.busy() // a session's message arrives as the first computation starts
    return file
  }, QUIET)
  t.teardown(async () => await sums.idle())
  sums.schedule(hash, 4 << 20)
  while (locates === 0) await sleep(10)
  await sleep(QUIET / 2)
  t.notOk(existsSync(sumsFile), 'the interrupted computation stored nothing')
  t.equal(locates, 1, 'and has not started over within the quiet time')
  const deadline = performance.now() + 5000
  while (!existsSync(sumsFile) && performance.now() < deadline) await sleep(10)
  t.ok(existsSync(sumsFile), 'computed once quiet again')
  t.equal(locates, 2, 'by the second start')
})

t.test('sums asked for by a client are computed whatever sessions are doing', async (t) => {
  const { dir, file, hash } = setup(t, 1 << 20)
  const sums: BlockSums = new BlockSums(join(dir, 'sums'), async () => { sums.busy(); return file }, QUIET)
  const got = await sums.get(hash, SIG_BLOCK_SIZE)
  t.ok(got !== undefined && got.length > 0, 'a getsig is answered')
})
