/**
 * A hostile or broken peer against the real server process: it gets a clear error, nothing is
 * written outside the destination, and the server keeps serving everyone else.
 */
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { clientHandshake, Connection, encodeFramePrefix, MAX_FRAME, type Message } from '@fsyncd/protocol'
import { diffTrees, pushOnce, startServer, tempDir, waitFor } from '../helpers/fsyncd.js'
import { tempFiles } from '../helpers/faults.js'

async function open (port: number): Promise<Connection> {
  const socket = connect(port, '127.0.0.1')
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  return new Connection(socket)
}

async function session (port: number): Promise<Connection> {
  const conn = await open(port)
  await clientHandshake(conn, undefined)
  conn.maxFrame = MAX_FRAME
  await conn.expect('ready')
  return conn
}

/** Sends operations and collects the answer to each id. */
async function answers (conn: Connection, msgs: Array<[Message, Buffer?]>, ids: number[]): Promise<Map<number, Message>> {
  for (const [m, p] of msgs) await conn.send(m, p)
  const got = new Map<number, Message>()
  while (ids.some((id) => !got.has(id))) {
    const item = await conn.next()
    if (item === undefined) throw new Error('closed')
    if (item.msg.t === 'ack') for (const id of item.msg.ids) got.set(id, item.msg)
    if (item.msg.t === 'nack') got.set(item.msg.id, item.msg)
  }
  return got
}

t.test('no write escapes the destination through a planted symlink', async (t) => {
  const dest = tempDir()
  const outside = tempDir()
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  const conn = await session(server.port)
  const content = Buffer.from('pwned')
  const hash = createHash('sha256').update(content).digest()
  const got = await answers(conn, [
    [{ t: 'symlink', id: 1, path: 'evil', target: outside, mtime: Date.now() }],
    [{ t: 'file', id: 2, path: 'evil/x.txt', size: content.length, mode: 0o644, mtime: Date.now(), hash, have: false }],
    [{ t: 'data', id: 2, z: 0 }, content],
    [{ t: 'end', id: 2 }],
    [{ t: 'mkdir', id: 3, path: 'evil/sub', mode: 0o755, mtime: Date.now() }],
    [{ t: 'move', id: 4, from: 'evil', to: 'evil2' }],
    [{ t: 'file', id: 5, path: 'evil2/y.txt', size: content.length, mode: 0o644, mtime: Date.now(), hash, have: true }],
    [{ t: 'delete', id: 6, path: 'evil2/anything' }],
  ], [1, 2, 3, 4, 5, 6])
  t.equal(got.get(1)?.t, 'ack', 'the link itself is created, as a link')
  for (const id of [2, 3, 5, 6]) t.match(got.get(id), { t: 'nack', code: 'BAD_PATH' }, `op ${id} through the link is refused`)
  t.equal(got.get(4)?.t, 'ack', 'renaming the link is fine')
  t.notOk(existsSync(join(outside, 'x.txt')), 'nothing written outside')
  t.notOk(existsSync(join(outside, 'sub')), 'no folder made outside')
  conn.close()
})

t.test('malformed and oversize frames close that connection only', async (t) => {
  const dest = tempDir()
  const src = tempDir()
  writeFileSync(join(src, 'a.txt'), 'still served')
  const server = await startServer(dest)
  t.teardown(() => server.stop())

  // Pre-auth: a frame announcing 100 MB is refused from its prefix.
  let conn = await open(server.port)
  conn.socket.write(encodeFramePrefix(10, 100 * 1024 * 1024))
  await t.rejects(conn.expect('challenge'), { code: 'FRAME_TOO_LARGE' }, 'oversize pre-auth frame refused with a clear code')

  // Garbage that is not msgpack.
  conn = await open(server.port)
  const junk = randomBytes(20)
  conn.socket.write(Buffer.concat([encodeFramePrefix(junk.length, 0), junk]))
  await t.rejects(conn.expect('challenge'), { code: /MALFORMED|UNEXPECTED/ })

  // A valid message in the wrong state (an operation before the handshake).
  conn = await open(server.port)
  await conn.send({ t: 'delete', id: 1, path: 'a' })
  await t.rejects(conn.expect('challenge'), { code: 'UNEXPECTED' })

  // Authenticated, then a path that leaves the root inside an otherwise valid message.
  conn = await session(server.port)
  const { encodeMessage } = await import('@fsyncd/protocol')
  const header = encodeMessage({ t: 'delete', id: 1, path: 'ok' })
  const evil = Buffer.from(header.toString('latin1').replace('ok', '..'), 'latin1')
  conn.socket.write(Buffer.concat([encodeFramePrefix(evil.length, 0), evil]))
  await t.rejects(conn.expect('ack'), { code: 'BAD_PATH' }, 'traversal refused')

  // Meanwhile a well-behaved client is served as usual.
  const r = await pushOnce(src, server.port, tempDir())
  t.equal(r.code, 0, r.stderr)
  t.same(diffTrees(src, dest), [])
})

t.test('a wrong hash never reaches its final name', async (t) => {
  const dest = tempDir()
  mkdirSync(join(dest, 'd'))
  writeFileSync(join(dest, 'd/keep.txt'), 'last good state')
  utimesSync(join(dest, 'd'), 1e9, 1e9)
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  const conn = await session(server.port)
  const content = Buffer.from('new content')
  const wrong = createHash('sha256').update('something else').digest()
  const got = await answers(conn, [
    [{ t: 'file', id: 1, path: 'd/keep.txt', size: content.length, mode: 0o644, mtime: Date.now(), hash: wrong, have: false }],
    [{ t: 'data', id: 1, z: 0 }, content],
    [{ t: 'end', id: 1 }],
    // Whole in one message: written beside the final name, then refused.
    [{ t: 'file', id: 2, path: 'd/keep.txt', size: content.length, mode: 0o644, mtime: Date.now(), hash: wrong, have: false, inline: 0 }, content],
    [{ t: 'files', z: 0, files: [[3, 'd/keep.txt', content.length, 0o644, Date.now(), wrong], [4, 'd/new.txt', content.length, 0o644, Date.now(), wrong]] }, Buffer.concat([content, content])],
  ], [1, 2, 3, 4])
  for (const id of [1, 2, 3, 4]) t.match(got.get(id), { t: 'nack', code: 'HASH_MISMATCH' })
  const { readFileSync } = await import('node:fs')
  t.equal(readFileSync(join(dest, 'd/keep.txt'), 'utf8'), 'last good state', 'the old content stays')
  t.notOk(existsSync(join(dest, 'd/new.txt')))
  t.same(tempFiles(dest), [], 'the temp files are gone')
  t.equal(statSync(join(dest, 'd')).mtimeMs, 1e12, 'the folder\'s mtime is back (the temp files beside keep.txt moved it)')
  conn.close()
})

t.test('a file never grows past its announced size', async (t) => {
  const dest = tempDir()
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  const conn = await session(server.port)
  const hash = createHash('sha256').update('0123456789').digest()
  const got = await answers(conn, [
    [{ t: 'file', id: 1, path: 'small.txt', size: 10, mode: 0o644, mtime: Date.now(), hash, have: false }],
    [{ t: 'data', id: 1, z: 0 }, Buffer.alloc(20, 120)],
    [{ t: 'end', id: 1 }],
    [{ t: 'file', id: 2, path: 'a.txt', size: 10, mode: 0o644, mtime: Date.now(), hash, have: false, inline: 0 }, Buffer.from('0123456789')],
    [{ t: 'file', id: 3, path: 'huge.txt', size: 10, mode: 0o644, mtime: Date.now(), hash, have: false }],
    [{ t: 'copy', id: 3, base: hash, ranges: [[0, 1 << 30]] }],
    [{ t: 'end', id: 3 }],
  ], [1, 2, 3])
  t.match(got.get(1), { t: 'nack', code: 'HASH_MISMATCH' }, 'data past the announced size is refused')
  t.equal(got.get(2)?.t, 'ack')
  t.match(got.get(3), { t: 'nack', code: 'HASH_MISMATCH' }, 'a copy past the announced size is refused before any byte is read')
  t.same(tempFiles(dest), [], 'no temp file left')
  conn.close()
})

t.test('a file announced without its hash is checked against the hash its end gives', async (t) => {
  const dest = tempDir()
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  const conn = await session(server.port)
  const content = Buffer.from('streamed, hashed on the way')
  const hash = createHash('sha256').update(content).digest()
  const got = await answers(conn, [
    [{ t: 'file', id: 1, path: 'ok.txt', size: content.length, mode: 0o644, mtime: Date.now(), have: false }],
    [{ t: 'data', id: 1, z: 0 }, content],
    [{ t: 'end', id: 1, hash }],
    [{ t: 'file', id: 2, path: 'wrong.txt', size: content.length, mode: 0o644, mtime: Date.now(), have: false }],
    [{ t: 'data', id: 2, z: 0 }, content],
    [{ t: 'end', id: 2, hash: createHash('sha256').update('other').digest() }],
  ], [1, 2])
  t.equal(got.get(1)?.t, 'ack')
  t.match(got.get(2), { t: 'nack', code: 'HASH_MISMATCH' })
  const { readFileSync, readdirSync } = await import('node:fs')
  t.equal(readFileSync(join(dest, 'ok.txt'), 'utf8'), content.toString())
  t.notOk(existsSync(join(dest, 'wrong.txt')))

  // An upload cut short before its hash came is not kept to resume: nothing names its content.
  await conn.send({ t: 'file', id: 3, path: 'cut.bin', size: 4 << 20, mode: 0o644, mtime: Date.now(), have: false })
  await conn.send({ t: 'data', id: 3, z: 0 }, randomBytes(2 << 20))
  await conn.send({ t: 'ping' })
  await conn.expect('pong')
  t.equal(readdirSync(join(dest, '.fsyncd/tmp')).length, 1, 'its temp file')
  conn.destroy()
  await waitFor(() => readdirSync(join(dest, '.fsyncd/tmp')).length === 0, 5000)
  t.same(readdirSync(join(dest, '.fsyncd/partial')), [], 'is discarded, not kept as a partial upload')

  for (const [label, msgs] of [
    ['an end without the hash its file left out', [[{ t: 'file', id: 4, path: 'x', size: 1, mode: 0o644, mtime: 0, have: false }], [{ t: 'data', id: 4, z: 0 }, Buffer.from('x')], [{ t: 'end', id: 4 }]]],
    ['an end with a hash its file gave', [[{ t: 'file', id: 5, path: 'y', size: 1, mode: 0o644, mtime: 0, have: false, hash }], [{ t: 'data', id: 5, z: 0 }, Buffer.from('y')], [{ t: 'end', id: 5, hash }]]],
  ] as Array<[string, Array<[Message, Buffer?]>]>) {
    const c = await session(server.port)
    for (const [m, p] of msgs) await c.send(m, p)
    await t.rejects(c.expect('ack'), { code: 'MALFORMED' }, label)
    c.destroy()
  }
})

t.test('another session moves a folder while a batch lands in it: the batch lands whole, on one side, and leaves no temp file', async (t) => {
  // A batch's temp files are beside their final names: a move of their folder between their
  // creation and their queuing carried them away (the batch was refused, 200 temp files stayed).
  for (let round = 0; round < 3; round++) {
    const dest = tempDir()
    mkdirSync(join(dest, 'd'))
    const server = await startServer(dest)
    t.teardown(() => server.stop())
    const a = await session(server.port)
    const b = await session(server.port)
    const content = Buffer.from(`round ${round}`)
    const hash = createHash('sha256').update(content).digest()
    const ids = Array.from({ length: 200 }, (_, i) => i + 1)
    const landing = answers(a, [[{ t: 'files', z: 0, files: ids.map((id) => [id, `d/f${id}`, content.length, 0o644, Date.now(), hash]) }, Buffer.concat(ids.map(() => content))]], ids)
    await new Promise((resolve) => setTimeout(resolve, round))
    const moved = await answers(b, [[{ t: 'move', id: 1, from: 'd', to: 'e' }]], [1])
    const got = await landing
    t.equal(moved.get(1)?.t, 'ack', `round ${round}: the move`)
    t.equal(ids.filter((id) => got.get(id)?.t === 'ack').length, 200, `round ${round}: every file of the batch`)
    const side = existsSync(join(dest, 'e/f1')) ? 'e' : 'd'
    t.equal(ids.filter((id) => existsSync(join(dest, `${side}/f${id}`))).length, 200, `round ${round}: all 200 in ${side}/, none elsewhere`)
    t.same(tempFiles(dest), [], `round ${round}: no temp file left`)
    a.close()
    b.close()
  }
})
