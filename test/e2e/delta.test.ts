/**
 * The delta path end to end: a file that shares content with any file on the server costs only
 * its new bytes, counted by a proxy between the real CLI processes; a stale cache falls back to
 * sending the data and still ends with the right file.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { appendFileSync, chmodSync, existsSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CountingProxy, diffTrees, pushOnce, seededBytes, startServer, tempDir, waitFor } from '../helpers/fsyncd.js'

const MB = 1024 * 1024

t.test('edits, inserts, appends and concatenations cost only their new bytes', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  const state = tempDir()
  writeFileSync(join(src, 'big.bin'), seededBytes(21, 8 * MB))
  writeFileSync(join(src, 'other.bin'), seededBytes(22, 2 * MB))
  writeFileSync(join(src, 'log.txt'), Array.from({ length: 50_000 }, (_, i) => `line ${i} ${i * 7919 % 10007}`).join('\n'))
  const server = await startServer(dest)
  const proxy = new CountingProxy(server.port)
  await proxy.listen()
  t.teardown(async () => { await proxy.close(); await server.stop() })
  t.equal((await pushOnce(src, proxy.port, state)).code, 0)

  const step = async (label: string, change: () => void, maxBytes: number): Promise<void> => {
    change()
    proxy.reset()
    const r = await pushOnce(src, proxy.port, state)
    t.equal(r.code, 0, `${label}: ${r.stderr.slice(-300)}`)
    t.same(diffTrees(src, dest), [], `${label}: converged`)
    t.ok(proxy.total < maxBytes, `${label}: ${proxy.total} bytes on the wire (< ${maxBytes})`)
  }

  await step('100 bytes inserted in the middle of 8 MB', () => {
    const b = readFileSync(join(src, 'big.bin'))
    writeFileSync(join(src, 'big.bin'), Buffer.concat([b.subarray(0, 4 * MB + 17), seededBytes(23, 100), b.subarray(4 * MB + 17)]))
  }, 2048)
  await step('10 scattered 1 KiB overwrites', () => {
    const b = readFileSync(join(src, 'big.bin'))
    for (let i = 0; i < 10; i++) seededBytes(30 + i, 1024).copy(b, 1000 + i * 800_000)
    writeFileSync(join(src, 'big.bin'), b)
  }, 10 * (1024 + 2 * 1024) + 2048)
  await step('a new file that is two server files back to back', () => {
    writeFileSync(join(src, 'concat.bin'), Buffer.concat([readFileSync(join(src, 'other.bin')), readFileSync(join(src, 'big.bin'))]))
  }, 2048)
  await step('text appended to a log', () => {
    appendFileSync(join(src, 'log.txt'), Array.from({ length: 2000 }, (_, i) => `\nappended ${i} ${i * 31 % 97}`).join(''))
  }, 12 * 1024)
})

t.test('a stale block cache falls back to the data and never leaves a wrong file', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  const state = tempDir()
  writeFileSync(join(src, 'f.bin'), seededBytes(41, 1 * MB))
  let server = await startServer(dest)
  t.equal((await pushOnce(src, server.port, state)).code, 0)
  await server.stop()
  // The server's copy changes behind the client's back, keeping its size: the cache is stale.
  const onServer = readFileSync(join(dest, 'f.bin'))
  seededBytes(42, 64 * 1024).copy(onServer, 100_000)
  writeFileSync(join(dest, 'f.bin'), onServer)
  server = await startServer(dest)
  t.teardown(() => server.stop())
  const b = readFileSync(join(src, 'f.bin'))
  b[5] = b[5]! ^ 0xff
  writeFileSync(join(src, 'f.bin'), b)
  const r = await pushOnce(src, server.port, state)
  t.equal(r.code, 0, r.stderr)
  t.same(diffTrees(src, dest), [], 'the right content, whatever the cache said')
})

t.test('many uploads refused at once (their base changed behind the client\'s back) are all sent again', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  const state = tempDir()
  const base = seededBytes(51, 200 * 1024)
  writeFileSync(join(src, 'base.bin'), base)
  let server = await startServer(dest)
  t.equal((await pushOnce(src, server.port, state)).code, 0)
  await server.stop()
  const onServer = readFileSync(join(dest, 'base.bin'))
  seededBytes(52, 4096).copy(onServer, 50_000)
  writeFileSync(join(dest, 'base.bin'), onServer)
  server = await startServer(dest)
  t.teardown(() => server.stop())
  // Sixty new files, each the (cached, now stale) base with its own small edit: all deltified
  // against it, all refused, all resent with their data, a few at a time.
  for (let i = 0; i < 60; i++) {
    const v = Buffer.from(base)
    seededBytes(100 + i, 64).copy(v, 1000 * i)
    writeFileSync(join(src, `v${i}.bin`), v)
  }
  const r = await pushOnce(src, server.port, state)
  t.equal(r.code, 0, r.stderr.slice(-500))
  t.same(diffTrees(src, dest), [], 'every refused file arrived whole')
  t.same(r.summary?.failures, [], 'none reported as failed')
  // Refused and resent: the files went whole (~12 MB), not as 60 small deltas.
  t.ok(Number(r.summary?.wireBytesOut) > 60 * 200 * 1024 * 0.9, `${r.summary?.wireBytesOut} bytes sent`)
})

t.test('a sync that uploads nothing leaves the block cache alone; the next edit still finds it', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  const state = tempDir()
  writeFileSync(join(src, 'big.bin'), seededBytes(61, 4 * MB))
  writeFileSync(join(src, 'note.txt'), 'hello\n')
  const server = await startServer(dest)
  const proxy = new CountingProxy(server.port)
  await proxy.listen()
  t.teardown(async () => { await proxy.close(); await server.stop() })
  t.equal((await pushOnce(src, proxy.port, state)).code, 0)
  const cache = readdirSync(state).find((n) => n.endsWith('.blocks')) as string
  t.ok(cache !== undefined, 'the block cache is saved')
  const before = statSync(join(state, cache))
  chmodSync(join(src, 'note.txt'), 0o600) // a change that uploads nothing
  t.equal((await pushOnce(src, proxy.port, state)).code, 0)
  t.same(diffTrees(src, dest), [])
  const after = statSync(join(state, cache))
  t.equal(after.mtimeMs, before.mtimeMs, 'not rewritten')
  t.equal(after.size, before.size)
  const b = readFileSync(join(src, 'big.bin'))
  seededBytes(62, 100).copy(b, 2 * MB)
  writeFileSync(join(src, 'big.bin'), b)
  proxy.reset()
  t.equal((await pushOnce(src, proxy.port, state)).code, 0)
  t.same(diffTrees(src, dest), [])
  t.ok(proxy.total < 20_000, `the edit cost ${proxy.total} bytes: the cache was read when needed`)
})

t.test('a big file changed in place is hashed while it is sent; one only touched costs its attributes', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  const state = tempDir()
  const big = join(src, 'big.bin')
  writeFileSync(big, seededBytes(71, 4 * MB))
  const server = await startServer(dest)
  const proxy = new CountingProxy(server.port)
  await proxy.listen()
  t.teardown(async () => { await proxy.close(); await server.stop() })
  t.equal((await pushOnce(src, proxy.port, state)).code, 0)
  const ino = statSync(join(dest, 'big.bin')).ino

  const sync = async (label: string): Promise<Record<string, unknown>> => {
    proxy.reset()
    const r = await pushOnce(src, proxy.port, state)
    t.equal(r.code, 0, `${label}: ${r.stderr.slice(-300)}`)
    t.same(diffTrees(src, dest), [], `${label}: converged`)
    return r.summary ?? {}
  }

  utimesSync(big, new Date(2_000_000_000_000), new Date(2_000_000_000_000))
  let s = await sync('touched')
  t.match(s, { ops: 1, filesSent: 0, dataBytes: 0, copiedBytes: 0 }, 'only the attributes went')
  t.ok(proxy.total < 1024, `${proxy.total} bytes on the wire`)
  t.equal(statSync(join(dest, 'big.bin')).ino, ino, 'the server changed the file in place, no rebuild')
  t.equal(statSync(join(dest, 'big.bin')).mtimeMs, 2_000_000_000_000)

  const b = readFileSync(big)
  writeFileSync(big, Buffer.concat([b.subarray(2 * MB), b.subarray(0, 2 * MB)])) // same size, halves swapped
  s = await sync('halves swapped')
  t.match(s, { filesSent: 1, literalBytes: 0 }, 'sent as copies of what the server holds')
  t.ok(proxy.total < 2048, `${proxy.total} bytes on the wire`)

  const c = readFileSync(big)
  seededBytes(72, 100).copy(c, 3 * MB)
  writeFileSync(big, c)
  s = await sync('100 bytes overwritten')
  t.ok(proxy.total < 4096, `${proxy.total} bytes on the wire`)

  s = await sync('nothing changed')
  t.match(s, { ops: 0 }, 'the upload settled the hash the scan left: nothing to do')
  s = await sync('after the state was saved and loaded')
  t.match(s, { ops: 0 })
})

t.test('a cold client fetches the old version\'s block sums instead of sending the whole file', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  writeFileSync(join(src, 'big.bin'), seededBytes(51, 8 * MB))
  const server = await startServer(dest)
  const proxy = new CountingProxy(server.port)
  await proxy.listen()
  t.teardown(async () => { await proxy.close(); await server.stop() })
  t.equal((await pushOnce(src, proxy.port, tempDir())).code, 0)
  const b = readFileSync(join(src, 'big.bin'))
  seededBytes(52, 500).copy(b, 3 * MB)
  writeFileSync(join(src, 'big.bin'), b)
  proxy.reset()
  const r = await pushOnce(src, proxy.port, tempDir()) // a new state dir: no cache at all
  t.equal(r.code, 0, r.stderr)
  t.same(diffTrees(src, dest), [])
  t.ok(proxy.total < 8 * MB * 0.02 + 8192, `${proxy.total} bytes on the wire: the sums (~1.2 %) and the edit, not 8 MB`)
})

t.test('the server keeps block sums of what lands, and sends sums bigger than a frame in parts', async (t) => {
  // 400 MB at 1 KiB blocks: ~4.7 MB of sums, more than one 4 MiB frame.
  const src = tempDir()
  const dest = tempDir()
  const size = 400 * MB
  const big = Buffer.allocUnsafe(size)
  for (let at = 0; at < size; at += 8 * MB) seededBytes(600 + at / (8 * MB), 8 * MB).copy(big, at)
  writeFileSync(join(src, 'huge.bin'), big)
  const server = await startServer(dest)
  const proxy = new CountingProxy(server.port)
  await proxy.listen()
  t.teardown(async () => { await proxy.close(); await server.stop() })
  t.equal((await pushOnce(src, proxy.port, tempDir())).code, 0)
  const hash = createHash('sha256').update(big).digest('hex')
  const sumsFile = join(dest, '.fsyncd', 'sums', `${hash}-1024`)
  await waitFor(() => existsSync(sumsFile) || undefined, 30_000, () => 'the server computing the sums of what landed')
  const sumsBytes = statSync(sumsFile).size
  t.ok(sumsBytes > 4 * MB, `the server keeps them: ${sumsBytes} bytes`)

  // A cold client edits it: the sums come in several frames, and the edit costs about them, not 400 MB.
  seededBytes(7, 1000).copy(big, 123 * MB)
  writeFileSync(join(src, 'huge.bin'), big)
  proxy.reset()
  const r = await pushOnce(src, proxy.port, tempDir())
  t.equal(r.code, 0, r.stderr)
  t.same(diffTrees(src, dest), [])
  t.ok(proxy.total < sumsBytes + 64 * 1024, `${proxy.total} bytes on the wire for a 1 KB edit of 400 MB seen by a cold client`)
  await waitFor(() => !existsSync(sumsFile) || undefined, 30_000, () => 'the old version\'s sums dropped')
  t.pass('the sums of the old version are dropped once it is gone')
})
