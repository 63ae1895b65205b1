/**
 * A --once run that finds nothing changed, here or on the server, since the last run that ended
 * with nothing left to do, stops there (see packages/client/src/sync-mark.ts). It must not stop
 * there when anything changed: a local file, the server's tree (another client, or a server
 * restarted over a destination changed behind its back), or the client's own state.
 */
import t from 'tap'
import { rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { diffTrees, pushOnce, seededBytes, startServer, tempDir } from '../helpers/fsyncd.js'

const SKIPPED = 'nothing changed here or on the server since the last sync'

function sourceTree (seed: number): string {
  const src = tempDir()
  for (let i = 0; i < 20; i++) writeFileSync(join(src, `f${i}.bin`), seededBytes(seed * 100 + i, 1000 + i * 50))
  return src
}

t.test('nothing changed: the second run stops after its scan, and says so', async (t) => {
  const src = sourceTree(1)
  const dest = tempDir()
  const state = tempDir()
  const server = await startServer(dest)
  t.teardown(async () => { await server.stop() })
  const first = await pushOnce(src, server.port, state)
  t.equal(first.code, 0)
  t.notMatch(first.stderr, SKIPPED)
  const second = await pushOnce(src, server.port, state)
  t.equal(second.code, 0)
  t.match(second.stderr, SKIPPED)
  t.match(second.summary, { ops: 0, failures: [] })
  t.same(diffTrees(src, dest), [])

  writeFileSync(join(src, 'f3.bin'), 'changed here')
  const third = await pushOnce(src, server.port, state)
  t.notMatch(third.stderr, SKIPPED, 'a local change: synced')
  t.same(diffTrees(src, dest), [])
  t.match((await pushOnce(src, server.port, state)).stderr, SKIPPED, 'and in sync again after')
})

t.test('another client changed the server: synced back', async (t) => {
  const srcA = sourceTree(2)
  const srcB = sourceTree(3)
  const dest = tempDir()
  const stateA = tempDir()
  const server = await startServer(dest)
  t.teardown(async () => { await server.stop() })
  t.equal((await pushOnce(srcA, server.port, stateA)).code, 0)
  t.equal((await pushOnce(srcB, server.port, tempDir())).code, 0)
  t.same(diffTrees(srcB, dest), [], 'B made the destination its own')
  const again = await pushOnce(srcA, server.port, stateA)
  t.notMatch(again.stderr, SKIPPED)
  t.same(diffTrees(srcA, dest), [], 'A made it its own again')
})

t.test('a destination changed while its server was down: synced back', async (t) => {
  const src = sourceTree(4)
  const dest = tempDir()
  const state = tempDir()
  let server = await startServer(dest)
  const port = server.port // the client's state is per server address: the same one again
  t.equal((await pushOnce(src, port, state)).code, 0)
  t.match((await pushOnce(src, port, state)).stderr, SKIPPED, 'in sync')
  await server.stop()
  unlinkSync(join(dest, 'f7.bin'))
  writeFileSync(join(dest, 'f8.bin'), 'changed there')
  server = await startServer(dest, { port })
  t.teardown(async () => { await server.stop() })
  const again = await pushOnce(src, port, state)
  t.notMatch(again.stderr, SKIPPED)
  t.same(diffTrees(src, dest), [])
})

t.test('the client lost its state: a full sync, not a stop', async (t) => {
  const src = sourceTree(5)
  const dest = tempDir()
  const state = tempDir()
  const server = await startServer(dest)
  t.teardown(async () => { await server.stop() })
  t.equal((await pushOnce(src, server.port, state)).code, 0)
  t.match((await pushOnce(src, server.port, state)).stderr, SKIPPED)
  rmSync(state, { recursive: true, force: true })
  const cold = await pushOnce(src, server.port, state)
  t.notMatch(cold.stderr, SKIPPED)
  t.same(diffTrees(src, dest), [])
})
