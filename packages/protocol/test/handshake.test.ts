import { createHmac, randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import {
  clientHandshake, Connection, ErrorCode, FsyncdError, PROTOCOL_VERSION, serverHandshake,
} from '../src/index.js'
import { connectionPair, proxiedPair, within } from './helpers/net.js'

/**
 * The mutual HMAC handshake over real loopback TCP, with a `Connection` on each side. Where a test
 * needs a peer that misbehaves (a wrong proof, a replayed proof, a forged challenge), it speaks the
 * protocol by hand through a real `Connection`, computing proofs from the formula in handshake.ts.
 */

const TOKEN = 'correct horse battery staple 0123456789abcdef'
const WAIT = 5000

/** HMAC-SHA256(token, "fsyncd/<version> <role>\0" ‖ C ‖ S), written here from the doc comment. */
function proofFor (token: string, role: 'client' | 'server', c: Buffer, s: Buffer): Buffer {
  return createHmac('sha256', Buffer.from(token, 'utf8')).update(Buffer.concat([Buffer.from(`fsyncd/${PROTOCOL_VERSION} ${role}\0`), c, s])).digest()
}

type Settled = { ok: true } | { ok: false, err: unknown }
async function settle (p: Promise<unknown>): Promise<Settled> {
  try {
    await within(p, WAIT, 'handshake step')
    return { ok: true }
  } catch (err) {
    return { ok: false, err }
  }
}
const codeOf = (s: Settled): string => s.ok ? 'succeeded' : s.err instanceof FsyncdError ? s.err.code : `not an FsyncdError: ${String(s.err)}`

/** Runs both real handshakes; the client then closes, as a real client does after failing. */
async function handshake (t: Test, clientToken: string | undefined, serverToken: string | undefined): Promise<{ client: Settled, server: Settled, pair: Awaited<ReturnType<typeof connectionPair>> }> {
  const pair = await connectionPair(t)
  const server = settle(serverHandshake(pair.server, serverToken))
  const client = await settle(clientHandshake(pair.client, clientToken))
  if (!client.ok) pair.client.close()
  return { client, server: await server, pair }
}

t.test('the same token on both sides: both succeed, and the stream is usable after', async (t) => {
  const { client, server, pair } = await handshake(t, TOKEN, TOKEN)
  t.equal(codeOf(client), 'succeeded', 'client')
  t.equal(codeOf(server), 'succeeded', 'server')
  await pair.server.send({ t: 'ready', digest: Buffer.alloc(32, 7), entries: 3 })
  const ready = await within(pair.client.expect('ready'), WAIT, 'ready')
  t.equal(ready.entries, 3, 'the next message after the handshake arrives intact')
})

t.test('no token on either side: both succeed', async (t) => {
  const { client, server } = await handshake(t, undefined, undefined)
  t.equal(codeOf(client), 'succeeded', 'client')
  t.equal(codeOf(server), 'succeeded', 'server')
})

t.test('a wrong token on the client: the client refuses the server, and the server does not succeed', async (t) => {
  const { client, server } = await handshake(t, `${TOKEN}!`, TOKEN)
  t.equal(codeOf(client), ErrorCode.AUTH, 'client: the server cannot prove the client\'s token')
  t.not(codeOf(server), 'succeeded', `server: the handshake fails (${codeOf(server)})`)
  t.equal(codeOf(server), ErrorCode.CLOSED, 'server: the client hung up before sending any proof')
})

t.test('a client that skips checking the server and sends a wrong proof: the server throws AUTH and tells the client', async (t) => {
  const pair = await connectionPair(t)
  const server = settle(serverHandshake(pair.server, TOKEN))
  const nonce = randomBytes(32)
  await pair.client.send({ t: 'hello', version: PROTOCOL_VERSION, nonce })
  const challenge = await within(pair.client.expect('challenge'), WAIT, 'challenge')
  t.equal(challenge.auth, 'hmac', 'a server with a token asks for hmac')
  t.ok(challenge.proof?.equals(proofFor(TOKEN, 'server', nonce, challenge.nonce)), 'the server proof follows the documented formula')
  await pair.client.send({ t: 'auth', proof: proofFor('not the token', 'client', nonce, challenge.nonce) })
  t.equal(codeOf(await server), ErrorCode.AUTH, 'server throws AUTH')
  t.equal(codeOf(await settle(pair.client.expect('ready'))), ErrorCode.AUTH, 'the client gets an error message with code AUTH')
})

t.test('a proof computed independently from the documented formula is accepted', async (t) => {
  const pair = await connectionPair(t)
  const server = settle(serverHandshake(pair.server, TOKEN))
  const nonce = randomBytes(32)
  await pair.client.send({ t: 'hello', version: PROTOCOL_VERSION, nonce })
  const challenge = await within(pair.client.expect('challenge'), WAIT, 'challenge')
  await pair.client.send({ t: 'auth', proof: proofFor(TOKEN, 'client', nonce, challenge.nonce) })
  t.equal(codeOf(await server), 'succeeded', 'HMAC-SHA256(token, "fsyncd/2 client\\0" ‖ C ‖ S) authenticates')
})

t.test('the server\'s proof reflected back as the client\'s is refused (role labels differ)', async (t) => {
  const pair = await connectionPair(t)
  const server = settle(serverHandshake(pair.server, TOKEN))
  const nonce = randomBytes(32)
  await pair.client.send({ t: 'hello', version: PROTOCOL_VERSION, nonce })
  const challenge = await within(pair.client.expect('challenge'), WAIT, 'challenge')
  await pair.client.send({ t: 'auth', proof: challenge.proof })
  t.equal(codeOf(await server), ErrorCode.AUTH, 'the server\'s own proof does not authenticate a client')
})

t.test('a proof recorded from one session is refused in the next (fresh server nonce)', async (t) => {
  const first = await connectionPair(t)
  const ok = settle(serverHandshake(first.server, TOKEN))
  const nonce = randomBytes(32)
  await first.client.send({ t: 'hello', version: PROTOCOL_VERSION, nonce })
  const c1 = await within(first.client.expect('challenge'), WAIT, 'challenge 1')
  const recorded = proofFor(TOKEN, 'client', nonce, c1.nonce)
  await first.client.send({ t: 'auth', proof: recorded })
  t.equal(codeOf(await ok), 'succeeded', 'the recorded session itself succeeds')

  const second = await connectionPair(t)
  const replay = settle(serverHandshake(second.server, TOKEN))
  await second.client.send({ t: 'hello', version: PROTOCOL_VERSION, nonce })
  const c2 = await within(second.client.expect('challenge'), WAIT, 'challenge 2')
  t.not(c2.nonce.toString('hex'), c1.nonce.toString('hex'), 'the server picks a new nonce each time')
  await second.client.send({ t: 'auth', proof: recorded })
  t.equal(codeOf(await replay), ErrorCode.AUTH, 'the replayed proof is refused')
})

t.test('a missing proof to a server with a token is refused', async (t) => {
  const pair = await connectionPair(t)
  const server = settle(serverHandshake(pair.server, TOKEN))
  await pair.client.send({ t: 'hello', version: PROTOCOL_VERSION, nonce: randomBytes(32) })
  await within(pair.client.expect('challenge'), WAIT, 'challenge')
  await pair.client.send({ t: 'auth', proof: null })
  t.equal(codeOf(await server), ErrorCode.AUTH, 'auth with a null proof')
})

t.test('a client with a token refuses a server without one (AUTH)', async (t) => {
  const { client, server } = await handshake(t, TOKEN, undefined)
  t.equal(codeOf(client), ErrorCode.AUTH, 'client')
  t.not(codeOf(server), 'succeeded', `server (${codeOf(server)})`)
})

t.test('a client without a token is refused by a server with one (AUTH)', async (t) => {
  const { client, server } = await handshake(t, undefined, TOKEN)
  t.equal(codeOf(client), ErrorCode.AUTH, 'client')
  t.not(codeOf(server), 'succeeded', `server (${codeOf(server)})`)
})

t.test('a forged challenge: the client refuses before revealing any proof of its own', async (t) => {
  for (const [name, proof] of [['a random proof', randomBytes(32)], ['no proof', null]] as const) {
    const pair = await connectionPair(t)
    const client = settle(clientHandshake(pair.client, TOKEN))
    const hello = await within(pair.server.expect('hello'), WAIT, 'hello')
    t.equal(hello.nonce.length, 32, `${name}: the client sent a 32-byte nonce`)
    await pair.server.send({ t: 'challenge', version: PROTOCOL_VERSION, nonce: randomBytes(32), auth: 'hmac', proof })
    t.equal(codeOf(await client), ErrorCode.AUTH, `${name}: client throws AUTH`)
    pair.client.close()
    const after = await within(pair.server.next(), WAIT, 'anything after the challenge')
    t.equal(after, undefined, `${name}: the client sent nothing after hello (no auth message)`)
  }
})

t.test('protocol versions: each side refuses the other\'s mismatch with VERSION', async (t) => {
  const a = await connectionPair(t)
  const server = settle(serverHandshake(a.server, TOKEN))
  await a.client.send({ t: 'hello', version: PROTOCOL_VERSION + 1, nonce: randomBytes(32) })
  t.equal(codeOf(await server), ErrorCode.VERSION, 'server throws VERSION')
  t.equal(codeOf(await settle(a.client.expect('challenge'))), ErrorCode.VERSION, 'and tells the client')

  const b = await connectionPair(t)
  const client = settle(clientHandshake(b.client, TOKEN))
  await within(b.server.expect('hello'), WAIT, 'hello')
  await b.server.send({ t: 'challenge', version: PROTOCOL_VERSION + 1, nonce: randomBytes(32), auth: 'none', proof: null })
  t.equal(codeOf(await client), ErrorCode.VERSION, 'client throws VERSION')
})

t.test('a server that refuses at once (an error instead of a challenge): the client throws that code', async (t) => {
  const pair = await connectionPair(t)
  const client = settle(clientHandshake(pair.client, TOKEN))
  await within(pair.server.expect('hello'), WAIT, 'hello')
  await pair.server.fail(ErrorCode.BUSY, 'too many connections')
  t.equal(codeOf(await client), ErrorCode.BUSY)
})

t.test('the token never crosses the wire, whatever the outcome', async (t) => {
  const forms = (tok: string): Buffer[] => [Buffer.from(tok, 'utf8'), Buffer.from(tok, 'utf16le'), Buffer.from(Buffer.from(tok).toString('hex')), Buffer.from(Buffer.from(tok).toString('base64'))]
  const cases: Array<[string, string | undefined, string | undefined, boolean]> = [
    ['same token', TOKEN, TOKEN, true],
    ['wrong client token', 'client-side secret 0123456789', TOKEN, false],
    ['client token, server without', TOKEN, undefined, false],
  ]
  for (const [name, clientToken, serverToken, succeeds] of cases) {
    const pair = await proxiedPair(t)
    const cc = new Connection(pair.client)
    const sc = new Connection(pair.server)
    const server = settle(serverHandshake(sc, serverToken))
    const client = await settle(clientHandshake(cc, clientToken))
    if (client.ok) await sc.send({ t: 'ready', digest: Buffer.alloc(32), entries: 0 })
    if (client.ok) await within(cc.expect('ready'), WAIT, 'ready through the proxy')
    cc.close()
    const srv = await server
    t.equal(client.ok && srv.ok, succeeds, `${name}: handshake through the proxy ${succeeds ? 'succeeds' : 'fails'}`)
    const up = pair.upstream()
    const down = pair.downstream()
    t.ok(up.includes('hello') && down.includes('challenge'), `${name}: the proxy recorded the exchange (${up.length} bytes up, ${down.length} down)`)
    if (succeeds) t.ok(up.includes('auth'), `${name}: including the client's proof`)
    for (const [who, tok] of [['client', clientToken], ['server', serverToken]] as const) {
      if (tok === undefined) continue
      const leaks = forms(tok).filter((f) => up.includes(f) || down.includes(f))
      t.equal(leaks.length, 0, `${name}: no form of the ${who}'s token (utf8, utf16, hex, base64) appears in either direction`)
    }
  }
})
