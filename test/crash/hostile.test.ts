/**
 * Hostile peers at the protocol level, against the real server process: slow-loris connections
 * are closed by the pre-auth deadline, oversize frames after authentication are refused from
 * their prefix (before the body is buffered) or at their exact limit, compressed bombs are
 * refused, a session ended by a protocol error leaves nothing behind (no temp file, no open
 * descriptor, no file installed late under a later session), and a well-behaved `push --once`
 * is served meanwhile. (test/e2e/hostile.test.ts covers symlink escapes, malformed frames and
 * hash mismatches.)
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { deflateRawSync, brotliCompressSync } from 'node:zlib'
import { clientHandshake, compress, type Connection, encodeFramePrefix, encodeMessage, MAX_FRAME, type Message, PROTOCOL_VERSION } from '@fsyncd/protocol'
import { diffTrees, seededBytes, startServer, tempDir } from '../helpers/fsyncd.js'
import { closedAfter, fdsUnder, openRaw, openSession, pushBounded, sleep, tempFiles } from '../helpers/faults.js'

function frame (msg: Message, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = encodeMessage(msg)
  return Buffer.concat([encodeFramePrefix(header.length, payload.length), header, payload])
}

/** The first `error` the server sends before closing, or undefined if it closes without one. */
async function errorOf (conn: Connection): Promise<string | undefined> {
  try {
    for (;;) {
      const item = await conn.next()
      if (item === undefined) return undefined
      if (item.msg.t === 'error') return item.msg.code
    }
  } catch (err) {
    return (err as { code?: string }).code ?? 'closed without an error message'
  }
}

function sourceTree (): string {
  const src = tempDir()
  mkdirSync(join(src, 'd'))
  writeFileSync(join(src, 'a.txt'), 'served meanwhile\n')
  writeFileSync(join(src, 'd/b.bin'), seededBytes(7, 300_000))
  return src
}

function peakRssMb (pid: number | undefined): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${String(pid)}/status`, 'utf8'))
    return m === null ? undefined : Number(m[1]) / 1024
  } catch {
    return undefined
  }
}

t.test('slow-loris connections are closed by the pre-auth deadline while others are served', async (t) => {
  const dest = tempDir()
  const src = sourceTree()
  const server = await startServer(dest, { args: ['--log-level', 'error'] })
  t.teardown(() => server.stop())

  // A crowd of silent unauthenticated sockets, more than the server's connection cap (32) and
  // its pool of connections waiting to authenticate: legitimate clients must still get in.
  const opened = Date.now()
  const crowd: Connection[] = []
  for (let i = 0; i < 100; i++) crowd.push(await openRaw(server.port))
  const crowdClosed = Promise.all(crowd.map(async (c) => await closedAfter(c.socket, opened)))

  // Then the two measured ones: one sends nothing at all; one trickles a valid hello a byte
  // every 400 ms (activity that would reset an idle timer must not reset the deadline).
  const since = Date.now()
  const silent = await openRaw(server.port)
  const trickle = await openRaw(server.port)
  const silentError = errorOf(silent)
  const trickleError = errorOf(trickle)
  const hello = frame({ t: 'hello', version: PROTOCOL_VERSION, nonce: Buffer.alloc(32, 7) })
  let sent = 0
  const dripper = setInterval(() => {
    if (sent < hello.length && !trickle.socket.destroyed) trickle.socket.write(hello.subarray(sent, ++sent))
  }, 400)
  t.teardown(() => clearInterval(dripper))

  const r = await pushBounded(src, server.port, tempDir(), 20_000)
  t.equal(r.code, 0, `a well-behaved push is served while 102 unauthenticated sockets sit idle: exit ${String(r.code)} ${r.stderr.slice(-300)}`)
  t.same(diffTrees(src, dest), [])
  writeFileSync(join(src, 'a.txt'), 'served again while they wait\n')
  const r2 = await pushBounded(src, server.port, tempDir(), 20_000)
  t.equal(r2.code, 0, `and again: exit ${String(r2.code)} ${r2.stderr.slice(-300)}`)
  t.same(diffTrees(src, dest), [])

  const silentMs = await closedAfter(silent.socket, since)
  const trickleMs = await closedAfter(trickle.socket, since)
  t.ok(silentMs <= 15_000, `the silent connection was closed after ${silentMs} ms`)
  t.ok(trickleMs <= 15_000, `the trickling connection was closed after ${trickleMs} ms (${sent} of ${hello.length} hello bytes sent)`)
  t.ok(silentMs >= 5_000, 'not before the client had a fair chance to authenticate')
  t.equal(await silentError, 'TIMEOUT', 'the silent client is told TIMEOUT')
  t.equal(await trickleError, 'TIMEOUT', 'the trickling client is told TIMEOUT')
  const crowdMs = await crowdClosed
  t.ok(Math.max(...crowdMs) <= 16_000, `the crowd was closed too (last after ${Math.max(...crowdMs)} ms)`)

  writeFileSync(join(src, 'a.txt'), 'served after the deadline\n')
  const r3 = await pushBounded(src, server.port, tempDir(), 20_000)
  t.equal(r3.code, 0, `served once they are gone: ${r3.stderr.slice(-300)}`)
  t.same(diffTrees(src, dest), [])
  t.equal(server.proc.exitCode, null, 'the server is still running')
})

t.test('oversize frames after authentication close that connection only', async (t) => {
  const dest = tempDir()
  const src = sourceTree()
  const server = await startServer(dest, { args: ['--log-level', 'error'] })
  t.teardown(() => server.stop())
  const background = pushBounded(src, server.port, tempDir(), 30_000)

  // A prefix announcing one byte over the limit, or 4 GiB: refused before any body arrives.
  for (const len of [2 + MAX_FRAME + 1, 0xffffffff]) {
    const conn = await openSession(server.port)
    const prefix = Buffer.alloc(6)
    prefix.writeUInt32BE(len, 0)
    prefix.writeUInt16BE(16, 4)
    const since = Date.now()
    conn.socket.write(prefix)
    t.equal(await errorOf(conn), 'FRAME_TOO_LARGE', `a prefix announcing ${len - 2} bytes is refused`)
    t.ok(await closedAfter(conn.socket, since) < 6_000, 'and the connection is closed without waiting for the body')
  }

  // A frame of exactly the limit (header + payload = 4 MiB) is fine; one byte more is not.
  const mtime = Date.UTC(2020, 0, 1)
  const exact = async (id: number, name: string, extra: number): Promise<{ code: string | undefined, conn: Connection }> => {
    const conn = await openSession(server.port)
    const header = encodeMessage({ t: 'data', id, z: 0 })
    const body = seededBytes(id, MAX_FRAME - header.length + extra)
    const hash = createHash('sha256').update(body).digest()
    const bytes = Buffer.concat([
      frame({ t: 'file', id, path: name, size: body.length, mode: 0o644, mtime, hash, have: false }),
      encodeFramePrefix(header.length, body.length), header, body,
      frame({ t: 'end', id }),
      frame({ t: 'bye' }),
    ])
    conn.socket.write(bytes)
    for (;;) {
      const item = await conn.next().catch((err: unknown) => ({ msg: { t: 'error', code: (err as { code: string }).code } }))
      if (item === undefined) return { code: undefined, conn }
      const msg = item.msg as { t: string, code?: string, ids?: number[] }
      if (msg.t === 'ack' && msg.ids?.includes(id) === true) return { code: 'ack', conn }
      if (msg.t === 'error' || msg.t === 'nack') return { code: msg.code, conn }
    }
  }
  const atLimit = await exact(1, 'exactly-4MiB-frame.bin', 0)
  t.equal(atLimit.code, 'ack', 'a frame of exactly 4 MiB is accepted and the file acknowledged')
  t.ok(existsSync(join(dest, 'exactly-4MiB-frame.bin')), 'and it is at its final name')
  atLimit.conn.close()
  const over = await exact(2, 'one-byte-over.bin', 1)
  t.equal(over.code, 'FRAME_TOO_LARGE', 'a frame of 4 MiB + 1 byte is refused')
  t.notOk(existsSync(join(dest, 'one-byte-over.bin')), 'nothing at its final name')

  // Compressed bombs: a small data frame that inflates past 8 MiB, a files batch past its sizes.
  const zeros = Buffer.alloc(9 * 1024 * 1024)
  const codecs = ['', 'deflate', 'brotli', 'zstd']
  for (const [z, packed] of [[1, deflateRawSync(zeros)], [2, brotliCompressSync(zeros)], [3, Buffer.from(await compress(3, zeros))]] as const) {
    const conn = await openSession(server.port)
    conn.socket.write(Buffer.concat([
      frame({ t: 'file', id: 5, path: `bomb-${z}.bin`, size: zeros.length, mode: 0o644, mtime, hash: createHash('sha256').update(zeros).digest(), have: false }),
      frame({ t: 'data', id: 5, z }, packed),
    ]))
    t.equal(await errorOf(conn), 'MALFORMED', `a ${packed.length}-byte ${codecs[z] as string} chunk inflating past 8 MiB is refused`)
    t.notOk(existsSync(join(dest, `bomb-${z}.bin`)), 'nothing at its final name')
  }
  for (const [z, packed] of [[2, brotliCompressSync(zeros)], [3, Buffer.from(await compress(3, zeros))]] as const) {
    const conn = await openSession(server.port)
    const content = Buffer.from('tiny')
    conn.socket.write(frame({ t: 'files', z, files: [[9, 'tiny.txt', content.length, 0o644, mtime, createHash('sha256').update(content).digest()]] }, packed))
    t.equal(await errorOf(conn), 'MALFORMED', `a ${codecs[z] as string} files batch inflating past the sizes it announces is refused`)
    t.notOk(existsSync(join(dest, 'tiny.txt')), 'nothing at its final name')
  }

  const sweep = Date.now() + 3000
  while (tempFiles(dest).length > 0 && Date.now() < sweep) await sleep(20)
  t.same(tempFiles(dest), [], 'no temp file left by the refused uploads')
  const peak = peakRssMb(server.proc.pid)
  if (peak !== undefined) t.ok(peak < 300, `the server's peak memory stayed bounded (${peak.toFixed(0)} MB)`)

  const r = await background
  t.equal(r.code, 0, `the well-behaved push running meanwhile succeeded: ${r.stderr.slice(-300)}`)
  writeFileSync(join(src, 'a.txt'), 'and after\n')
  const r2 = await pushBounded(src, server.port, tempDir(), 30_000)
  t.equal(r2.code, 0, `and one after: ${r2.stderr.slice(-300)}`)
  t.same(diffTrees(src, dest), [], 'the destination converged (the files the raw sessions left are deleted)')
  t.equal(server.proc.exitCode, null, 'the server is still running')
})

t.test('a session ended by a protocol error leaves nothing behind for later sessions', async (t) => {
  const dest = tempDir()
  const src = sourceTree()
  const server = await startServer(dest, { args: ['--log-level', 'error'] })
  t.teardown(() => server.stop())
  let r = await pushBounded(src, server.port, tempDir(), 30_000)
  t.equal(r.code, 0, r.stderr.slice(-300))

  // A verified small file, then (in the same write, so it is queued before the server flushes)
  // a message that ends the session: `data` for an id that is not open.
  const conn = await openSession(server.port)
  const ghost = Buffer.from('I was never acknowledged\n')
  conn.socket.write(Buffer.concat([
    frame({ t: 'files', z: 0, files: [[1, 'ghost.txt', ghost.length, 0o644, Date.now(), createHash('sha256').update(ghost).digest()]] }, ghost),
    frame({ t: 'data', id: 999, z: 0 }, Buffer.from('x')),
  ]))
  t.equal(await errorOf(conn), 'UNEXPECTED', 'the session ends with UNEXPECTED, no ack for ghost.txt')
  await closedAfter(conn.socket, Date.now())
  const sweep = Date.now() + 2000
  while (tempFiles(dest).length > 0 && Date.now() < sweep) await sleep(20)
  const held = fdsUnder(server.proc.pid, join(dest, '.fsyncd', 'tmp'))
  t.same([...tempFiles(dest), ...held], [], `the dead session left no temp file (nor an open descriptor) on the server (${tempFiles(dest).length} files, ${held.length} descriptors)`)

  // A later, well-behaved client whose source has no ghost.txt.
  writeFileSync(join(src, 'a.txt'), 'a later push\n')
  r = await pushBounded(src, server.port, tempDir(), 30_000)
  t.equal(r.code, 0, `a later push succeeds: ${r.stderr.slice(-300)}`)
  const diff = diffTrees(src, dest)
  // Found by this test: the dead session's verified ghost.txt stayed queued and was installed by
  // the later session's first operation, after its listing, so push --once exited 0 with an
  // extra file (fixed in d285e29: installed when the session ends and before any 'ready').
  t.same(diff, [], `and leaves the destination equal to its source (${diff.join('; ') || 'equal'})`)
})

t.test('two sessions racing a folder against a symlink never write outside DEST', async (t) => {
  // Session A flips `p` between a folder and a link to a folder outside DEST while session B
  // creates folders and files under `p/`: each of B's operations checks `p` and then acts, and
  // the store must not let A's swap fall between the two.
  const jail = tempDir()
  const dest = join(jail, 'dest')
  const outside = join(jail, 'outside')
  mkdirSync(outside)
  const server = await startServer(dest, { args: ['--log-level', 'error'] })
  t.teardown(() => server.stop())
  const a = await openSession(server.port)
  const b = await openSession(server.port)
  for (const c of [a, b]) void (async () => { try { while (await c.next() !== undefined); } catch {} })()
  const mtime = 1_700_000_000_000
  const body = Buffer.from('x')
  const hash = createHash('sha256').update(body).digest()
  let id = 1
  const until = Date.now() + 3000
  while (Date.now() < until) {
    const sends: Array<Promise<void>> = []
    for (let i = 0; i < 20; i++) {
      sends.push(a.send({ t: 'mkdir', id: id++, path: 'p', mode: 0o755, mtime }))
      sends.push(a.send({ t: 'symlink', id: id++, path: 'p', target: outside, mtime }))
      sends.push(b.send({ t: 'mkdir', id: id++, path: `p/d${i}`, mode: 0o755, mtime }))
      sends.push(b.send({ t: 'file', id: id++, path: `p/f${i}`, size: 1, mode: 0o644, mtime, hash, have: false, inline: 0 }, body))
    }
    await Promise.all(sends)
    await sleep(5)
  }
  await sleep(300)
  t.same(readdirSync(outside), [], 'nothing was created outside DEST')
  a.destroy()
  b.destroy()
  t.equal(server.proc.exitCode, null, 'the server is still running')
})

t.test('a files batch that fails while its temp files are being created leaks nothing', async (t) => {
  const dest = tempDir()
  const server = await startServer(dest, { args: ['--log-level', 'error'] })
  t.teardown(() => server.stop())
  const body = Buffer.from('x')
  const hash = createHash('sha256').update(body).digest()
  for (let round = 0; round < 5; round++) {
    const conn = await openSession(server.port)
    // Eight files, the last reusing the first's id: UNEXPECTED ends the session mid-creation.
    const files: Array<[number, string, number, number, number, Buffer]> = Array.from({ length: 8 }, (_, i) => [i === 7 ? 0 : i, `f${round}-${i}`, 1, 0o644, 1_700_000_000_000, hash])
    await conn.send({ t: 'files', z: 0, files }, Buffer.concat(files.map(() => body)))
    t.equal(await errorOf(conn), 'UNEXPECTED', `round ${round}: the batch is refused`)
    conn.destroy()
  }
  await sleep(500)
  t.same(tempFiles(dest), [], 'no temp file left behind')
  t.same(fdsUnder(server.proc.pid, join(dest, '.fsyncd')), [], 'no descriptor left open under .fsyncd')
})

t.test('a flood of silent connections from one address does not evict another address\'s handshake', async (t) => {
  const dest = tempDir()
  const server = await startServer(dest, { args: ['--log-level', 'error'] })
  t.teardown(() => server.stop())
  // The slow but honest client connects first (the oldest in the pool), then a flood arrives
  // from another address, more than the pool holds (64).
  const honest = await openRaw(server.port, '127.0.0.3')
  const flood: Connection[] = []
  for (let i = 0; i < 100; i++) flood.push(await openRaw(server.port, '127.0.0.2'))
  await sleep(300)
  t.teardown(() => { for (const c of flood) c.destroy() })
  await clientHandshake(honest, undefined)
  honest.maxFrame = MAX_FRAME
  const ready = await honest.expect('ready')
  t.equal(ready.t, 'ready', 'the honest client, oldest in the pool, still completes its handshake')
  const open = flood.filter((c) => !c.socket.destroyed).length
  t.ok(open <= 64, `the flood evicted its own (${open} of 100 still open)`)
  honest.destroy()
})
