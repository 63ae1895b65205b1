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
  t.teardown(async () => await sums.stop())
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
  t.teardown(async () => await sums.stop())
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

t.test('a session at work between two queued contents holds the second back', async (t) => {
  const gone = setup(t, 1 << 20) // content the destination no longer holds: nothing to read
  const { dir, file, hash, sumsFile } = setup(t, 1 << 20)
  let located = 0
  const sums: BlockSums = new BlockSums(join(dir, 'sums'), async (h) => {
    if (h.equals(gone.hash)) {
      sums.busy() // a session's message arrives while the first is looked up
      return undefined
    }
    located++
    return file
  }, QUIET)
  t.teardown(async () => await sums.stop())
  sums.schedule(gone.hash, 1 << 20)
  sums.schedule(hash, 1 << 20)
  await sleep(QUIET * 1.5) // the first drain has run (after QUIET), the second waits until 2 QUIET
  t.equal(located, 0, 'the second content waits for the server to be quiet again')
  const deadline = performance.now() + 5000
  while (!existsSync(sumsFile) && performance.now() < deadline) await sleep(10)
  t.ok(existsSync(sumsFile), 'and is computed then')
})

t.test('an interrupted content goes to the back of the queue', async (t) => {
  const big = setup(t, 4 << 20)
  const { dir, file, hash } = setup(t, 1 << 20)
  const order: string[] = []
  const sums: BlockSums = new BlockSums(join(dir, 'sums'), async (h) => {
    const name = h.equals(big.hash) ? 'big' : 'small'
    order.push(name)
    if (order.length === 1) sums.busy()
    return name === 'big' ? big.file : file
  }, QUIET)
  t.teardown(async () => await sums.stop())
  sums.schedule(big.hash, 4 << 20)
  sums.schedule(hash, 1 << 20)
  const bigSums = join(dir, 'sums', `${big.hash.toString('hex')}-${SIG_BLOCK_SIZE}`)
  const deadline = performance.now() + 5000
  while (!existsSync(bigSums) && performance.now() < deadline) await sleep(10)
  t.same(order, ['big', 'small', 'big'], 'the small one goes first the second time')
})

t.test('stop ends background work for good', async (t) => {
  const { dir, file, hash, sumsFile } = setup(t, 1 << 20)
  let located = 0
  const sums = new BlockSums(join(dir, 'sums'), async () => { located++; return file }, QUIET)
  sums.schedule(hash, 1 << 20)
  await sums.stop()
  sums.schedule(hash, 1 << 20) // a file landing after the stop
  await sleep(QUIET * 2.5)
  t.equal(located, 0, 'nothing is computed after stop')
  t.notOk(existsSync(sumsFile), 'no sums stored')
})

t.test('sums asked for by a client are computed whatever sessions are doing', async (t) => {
  const { dir, file, hash } = setup(t, 1 << 20)
  const sums: BlockSums = new BlockSums(join(dir, 'sums'), async () => { sums.busy(); return file }, QUIET)
  const got = await sums.get(hash, SIG_BLOCK_SIZE)
  t.ok(got !== undefined && got.length > 0, 'a getsig is answered')
})
