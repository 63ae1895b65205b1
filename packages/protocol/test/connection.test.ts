import { createHash } from 'node:crypto'
import t from 'tap'
import {
  clientHandshake, Connection, encodeFramePrefix, encodeMessage, ErrorCode, FsyncdError, type Incoming,
  MAX_FRAME, type Message, PRE_AUTH_MAX_FRAME, serverHandshake,
} from '../src/index.js'
import { connectionPair, settlesWithin, socketPair, within } from './helpers/net.js'
import { Prng } from '@fsyncd/testkit'

/**
 * `Connection` over real loopback TCP: order and integrity under load in both directions,
 * backpressure that actually stops a sender and lets it go again, the frame limit before and after
 * auth, and every way a peer can end or poison the stream.
 */

const WAIT = 10_000
const TOKEN = 'connection-test-token-0123456789'

type Settled = { ok: true, value: unknown } | { ok: false, err: unknown }
async function settle (p: Promise<unknown>, ms = WAIT): Promise<Settled> {
  try {
    return { ok: true, value: await within(p, ms, 'connection step') }
  } catch (err) {
    return { ok: false, err }
  }
}
const codeOf = (s: Settled): string => s.ok ? 'resolved' : s.err instanceof FsyncdError ? s.err.code : `not an FsyncdError: ${String(s.err)}`

function frame (msg: Message, payload = Buffer.alloc(0)): Buffer {
  const header = encodeMessage(msg)
  return Buffer.concat([encodeFramePrefix(header.length, payload.length), header, payload])
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

t.test('many messages with payloads arrive in order and intact, both directions at once', async (t) => {
  const { client, server } = await connectionPair(t, { client: { maxFrame: MAX_FRAME }, server: { maxFrame: MAX_FRAME } })
  const count = 1500
  /** What side `seed` sends: data with seeded payloads, every tenth message an ack without one. */
  const plan = (seed: number): Array<{ msg: Message, payload?: Buffer }> => {
    const r = new Prng(seed)
    return Array.from({ length: count }, (_, i) => i % 10 === 9
      ? { msg: { t: 'ack', ids: [i, i + 1] } }
      : { msg: { t: 'data', id: i, z: 0 }, payload: r.bytes(r.pick([0, 1, 100, 4096, 20_000, 70_000])) })
  }
  const sendAll = async (conn: Connection, seed: number): Promise<void> => {
    for (const { msg, payload } of plan(seed)) await conn.send(msg, payload)
  }
  const receiveAll = async (conn: Connection, seed: number): Promise<string | undefined> => {
    const want = plan(seed)
    for (let i = 0; i < count; i++) {
      const got = await conn.next()
      if (got === undefined) return `ended after ${i} messages`
      const w = want[i] as { msg: Message, payload?: Buffer }
      if (JSON.stringify(got.msg) !== JSON.stringify(w.msg)) return `message ${i}: got ${JSON.stringify(got.msg)}, want ${JSON.stringify(w.msg)}`
      if (sha(got.payload) !== sha(w.payload ?? Buffer.alloc(0))) return `message ${i}: payload of ${got.payload.length} bytes differs`
    }
    return undefined
  }
  const [, , up, down] = await within(Promise.all([sendAll(client, 1), sendAll(server, 2), receiveAll(server, 1), receiveAll(client, 2)]), WAIT * 2, 'the exchange')
  t.equal(up, undefined, `client → server: ${count} messages in order and intact`)
  t.equal(down, undefined, `server → client: ${count} messages in order and intact`)
  t.equal(server.bytesIn, client.bytesOut, `bytes counted alike on both ends (${client.bytesOut})`)
  t.equal(client.bytesIn, server.bytesOut, `and the other way (${server.bytesOut})`)
  t.ok(client.bytesOut > 10 * 1024 * 1024, 'enough bytes to cross many socket chunks')
})

t.test('backpressure: send stops resolving while the reader does not read, and resumes when it does', async (t) => {
  const { client, server } = await connectionPair(t, { server: { maxFrame: MAX_FRAME } })
  const payload = new Prng(9).bytes(256 * 1024)
  const budget = 512 // 128 MiB: far more than loopback buffers plus the reader's queue can hold
  let resolved = 0
  let stalled: Promise<void> | undefined
  for (let i = 0; i < budget; i++) {
    const p = client.send({ t: 'data', id: i, z: 0 }, payload)
    if (!await settlesWithin(p, 300)) { stalled = p; break }
    await p
    resolved++
  }
  t.ok(stalled !== undefined, `send stopped resolving after ${resolved} messages (${(resolved * payload.length / 2 ** 20).toFixed(0)} MiB)`)
  if (stalled === undefined) return
  t.notOk(await settlesWithin(stalled, 700), 'and is still pending while nobody reads')
  t.ok(server.socket.isPaused(), 'the reader paused its socket once its queue was full')
  t.ok(server.hasQueued, 'with messages waiting')

  const extra = 20
  const total = resolved + 1 + extra
  const reading = (async (): Promise<string | undefined> => {
    for (let i = 0; i < total; i++) {
      const got = await server.next()
      if (got === undefined) return `ended after ${i}`
      if (got.msg.t !== 'data' || got.msg.id !== i) return `message ${i} is ${JSON.stringify(got.msg)}`
      if (!got.payload.equals(payload)) return `message ${i}: payload differs`
    }
    return undefined
  })()
  await within(stalled, WAIT, 'the stalled send resumes once the reader reads')
  t.pass('the stalled send resolved once the reader read')
  for (let i = resolved + 1; i < total; i++) await within(client.send({ t: 'data', id: i, z: 0 }, payload), WAIT, `send ${i}`)
  t.equal(await within(reading, WAIT, 'reader'), undefined, `all ${total} messages arrived in order and intact`)
})

t.test('a slow reader with a small queue still gets everything, then a clean end', async (t) => {
  const { client, server } = await connectionPair(t, { server: { maxFrame: MAX_FRAME, maxQueued: 2 } })
  const r = new Prng(10)
  const payloads = Array.from({ length: 400 }, () => r.bytes(r.between(0, 30_000)))
  const sending = (async () => {
    for (const [i, p] of payloads.entries()) await client.send({ t: 'data', id: i, z: 1 }, p)
    client.close()
  })()
  const got: Incoming[] = []
  for await (const item of server) {
    got.push(item)
    if (got.length % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 5))
  }
  await within(sending, WAIT, 'sender')
  t.equal(got.length, payloads.length, 'every message, then the iterator ends')
  t.ok(got.every((g, i) => g.msg.t === 'data' && g.msg.id === i && g.payload.equals(payloads[i] as Buffer)), 'in order and intact')
})

t.test('maxFrame: PRE_AUTH_MAX_FRAME refuses a 1 MiB payload; raised after the handshake, it passes', async (t) => {
  const big = new Prng(11).bytes(1024 * 1024)
  t.ok(big.length > PRE_AUTH_MAX_FRAME)
  for (const raise of [true, false]) {
    const { client, server } = await connectionPair(t)
    await within(Promise.all([clientHandshake(client, TOKEN), serverHandshake(server, TOKEN)]), WAIT, 'handshake')
    if (raise) {
      server.maxFrame = MAX_FRAME
      client.maxFrame = MAX_FRAME
    }
    const sending = settle(client.send({ t: 'data', id: 1, z: 0 }, big))
    const got = await settle(server.next())
    if (raise) {
      t.equal(codeOf(got), 'resolved', 'raised: the frame is accepted')
      const item = got.ok ? got.value as Incoming : undefined
      t.ok(item?.payload.equals(big), 'raised: the 1 MiB payload arrives intact')
      t.equal(codeOf(await sending), 'resolved', 'raised: the send completes')
    } else {
      t.equal(codeOf(got), ErrorCode.FRAME_TOO_LARGE, 'not raised: FRAME_TOO_LARGE')
      server.destroy()
      await sending
    }
  }
})

t.test('an oversize frame is refused on its 6-byte prefix, before the body is even sent', async (t) => {
  const { client: raw, server: sock } = await socketPair(t)
  const conn = new Connection(sock)
  raw.write(encodeFramePrefix(1, 1024 * 1024))
  t.equal(codeOf(await settle(conn.next())), ErrorCode.FRAME_TOO_LARGE, 'next() rejects with only the prefix on the wire')
})

t.test('the peer closing mid-frame makes next() reject with CLOSED, after the whole frames before it', async (t) => {
  const whole = frame({ t: 'ping' })
  const cut = frame({ t: 'data', id: 7, z: 0 }, Buffer.from('some payload bytes'))
  const header = encodeMessage({ t: 'data', id: 7, z: 0 })
  const points: Array<[string, number]> = [['inside the length', 2], ['inside the header length', 5], ['inside the header', 6 + Math.floor(header.length / 2)], ['inside the payload', cut.length - 3]]
  for (const [name, at] of points) {
    const { client: raw, server: sock } = await socketPair(t)
    const conn = new Connection(sock)
    raw.end(Buffer.concat([whole, cut.subarray(0, at)]))
    const first = await settle(conn.next())
    t.equal(first.ok && (first.value as Incoming).msg.t, 'ping', `${name}: the whole frame before the cut is delivered`)
    t.equal(codeOf(await settle(conn.next())), ErrorCode.CLOSED, `${name}: then next() rejects with CLOSED`)
  }
  const { client: raw, server: sock } = await socketPair(t)
  const conn = new Connection(sock)
  raw.end(whole)
  t.equal(codeOf(await settle(conn.next())), 'resolved', 'a clean end: the last frame is delivered')
  const end = await settle(conn.next())
  t.ok(end.ok && end.value === undefined, 'then next() gives undefined, not an error')
})

t.test('a poisoned stream: next() rejects with the decoder\'s or the validator\'s code', async (t) => {
  const cases: Array<[string, Buffer, string]> = [
    ['a header that is not msgpack', Buffer.concat([encodeFramePrefix(1, 0), Buffer.from([0xc1])]), ErrorCode.MALFORMED],
    ['an unknown message', frame({ t: 'nope' } as unknown as Message), ErrorCode.MALFORMED],
    ['a traversal path', frame({ t: 'delete', id: 1, path: '../x' }), ErrorCode.BAD_PATH],
  ]
  for (const [name, bytes, code] of cases) {
    const { client: raw, server: sock } = await socketPair(t)
    const conn = new Connection(sock)
    raw.write(Buffer.concat([frame({ t: 'ping' }), bytes]))
    t.equal(codeOf(await settle(conn.next())), 'resolved', `${name}: the good frame before it is delivered`)
    t.equal(codeOf(await settle(conn.next())), code, `${name}: ${code}`)
    t.equal(codeOf(await settle(conn.next())), code, `${name}: and stays failed`)
  }
})

t.test('a poisoned frame prefix: next() rejects with the decoder\'s code', async (t) => {
  for (const [name, bytes, code] of [
    ['a zero header length', Buffer.from([0, 0, 0, 2, 0, 0]), ErrorCode.MALFORMED],
    ['a header longer than its frame', Buffer.from([0, 0, 0, 3, 0, 2]), ErrorCode.MALFORMED],
    ['an oversize length', Buffer.from([0, 0x10, 0, 0, 0, 1]), ErrorCode.FRAME_TOO_LARGE],
  ] as const) {
    const { client: raw, server: sock } = await socketPair(t)
    const conn = new Connection(sock)
    raw.write(bytes)
    t.equal(codeOf(await settle(conn.next())), code, `${name}: ${code}`)
    t.equal(codeOf(await settle(conn.next())), code, `${name}: and stays failed`)
  }
})

t.test('a whole frame in the same chunk as a bad prefix is still delivered', async (t) => {
  const { client: raw, server: sock } = await socketPair(t)
  const conn = new Connection(sock)
  raw.write(Buffer.concat([frame({ t: 'error', code: ErrorCode.NO_SPACE, message: 'disk full' }), Buffer.from([0, 0, 0, 2, 0, 0])]))
  const first = await settle(conn.next())
  const firstSeen = first.ok ? (first.value as Incoming).msg.t : codeOf(first)
  t.equal(firstSeen, 'error', `the error message before the bad prefix is delivered (got ${firstSeen})`)
  t.equal(codeOf(await settle(conn.next())), ErrorCode.MALFORMED, 'then MALFORMED')
})

t.test('expect(): the wanted type, UNEXPECTED, the peer\'s error code, CLOSED', async (t) => {
  const { client, server } = await connectionPair(t)
  await client.send({ t: 'ping' })
  t.same(await within(server.expect('ping'), WAIT, 'ping'), { t: 'ping' }, 'the wanted type')
  await client.send({ t: 'pong' })
  t.equal(codeOf(await settle(server.expect('ping'))), ErrorCode.UNEXPECTED, 'another type is UNEXPECTED')
  await client.send({ t: 'error', code: ErrorCode.NO_SPACE, message: 'disk full' })
  const err = await settle(server.expect('ping'))
  t.equal(codeOf(err), ErrorCode.NO_SPACE, 'an error message becomes an FsyncdError with its code')
  t.match(err.ok ? '' : String((err.err as Error).message), /disk full/, 'and its message')
  client.close()
  t.equal(codeOf(await settle(server.expect('ping'))), ErrorCode.CLOSED, 'a closed connection is CLOSED')
})

t.test('fail(): the peer learns the code and the message, then the stream ends', async (t) => {
  const { client, server } = await connectionPair(t)
  await server.fail(ErrorCode.BUSY, 'too many connections')
  const got = await settle(client.next())
  t.same(got.ok && (got.value as Incoming).msg, { t: 'error', code: ErrorCode.BUSY, message: 'too many connections' })
  const end = await settle(client.next())
  t.ok(end.ok && end.value === undefined, 'then a clean end')
  t.equal(codeOf(await settle(server.send({ t: 'ping' }))), ErrorCode.CLOSED, 'sending on a closed connection is CLOSED')
})

t.test('destroy(err): next() rejects with that error', async (t) => {
  const { server } = await connectionPair(t)
  const waiting = settle(server.next())
  const boom = new FsyncdError(ErrorCode.TIMEOUT, 'idle')
  server.destroy(boom)
  const got = await waiting
  t.ok(!got.ok && got.err === boom, 'the pending next() rejects with the error given to destroy')
})

t.test('fail() with a long non-ASCII message still tells the peer the code', async (t) => {
  const { client, server } = await connectionPair(t, { client: { maxFrame: MAX_FRAME } })
  await server.fail(ErrorCode.IO, `cannot write ${'€'.repeat(2000)}`)
  const seen = codeOf(await settle(client.expect('ready')))
  t.equal(seen, ErrorCode.IO, `the peer sees IO (it saw ${seen})`)
})

t.test('two concurrent next() calls both get a message', async (t) => {
  const { client, server } = await connectionPair(t)
  const a = server.next()
  const b = server.next()
  await client.send({ t: 'ping' })
  await client.send({ t: 'pong' })
  t.ok(await settlesWithin(b, 1000), 'the second call settles')
  t.ok(await settlesWithin(a, 500), 'the first call settles too')
  client.close()
  t.ok(await settlesWithin(a, 500), 'or at least when the peer closes')
})

t.test('maxFrame reads back what was set', async (t) => {
  const { client } = await connectionPair(t)
  client.maxFrame = MAX_FRAME
  t.equal(client.maxFrame, MAX_FRAME, 'conn.maxFrame')
})
