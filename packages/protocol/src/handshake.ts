/**
 * Mutual authentication by HMAC challenge-response on a shared token; the token never crosses
 * the wire. Each side sends a fresh 32-byte nonce; each proves knowledge of the token with
 * HMAC-SHA256(token, label ‖ clientNonce ‖ serverNonce), with a different label per role so one
 * side's proof can never be replayed as the other's. Proofs are compared in constant time.
 *
 *   client → hello {version, nonce C}
 *   server → challenge {version, nonce S, auth, proof = HMAC(token, "server" ‖ C ‖ S)}
 *   client → auth {proof = HMAC(token, "client" ‖ C ‖ S)}      (client checked the server first)
 *   server → ready {...}                                       (sent by the caller)
 *
 * A server without a token says auth "none" and the caller must have restricted it to loopback.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Connection } from './connection.js'
import { ErrorCode, FsyncdError } from './errors.js'
import { NONCE_BYTES, PROTOCOL_VERSION } from './messages.js'

function proof (token: string, role: 'client' | 'server', clientNonce: Buffer, serverNonce: Buffer): Buffer {
  return createHmac('sha256', token).update(`fsyncd/${PROTOCOL_VERSION} ${role}\0`).update(clientNonce).update(serverNonce).digest()
}

function proofMatches (expected: Buffer, got: Buffer | null): boolean {
  return got !== null && got.length === expected.length && timingSafeEqual(expected, got)
}

/** Client side. Throws FsyncdError(AUTH) when the server cannot prove the token, or refuses ours. */
function checkToken (token: string | undefined): void {
  if (token !== undefined && token.length === 0) throw new FsyncdError(ErrorCode.AUTH, 'an empty token is no token')
}

export async function clientHandshake (conn: Connection, token: string | undefined): Promise<void> {
  checkToken(token)
  const nonce = randomBytes(NONCE_BYTES)
  await conn.send({ t: 'hello', version: PROTOCOL_VERSION, nonce })
  const challenge = await conn.expect('challenge')
  if (challenge.version !== PROTOCOL_VERSION) {
    throw new FsyncdError(ErrorCode.VERSION, `server speaks protocol ${challenge.version}, this client ${PROTOCOL_VERSION}`)
  }
  if (challenge.auth === 'none') {
    if (token !== undefined) throw new FsyncdError(ErrorCode.AUTH, 'this client has a token but the server runs without one: refusing to trust it')
    await conn.send({ t: 'auth', proof: null })
    return
  }
  if (token === undefined) throw new FsyncdError(ErrorCode.AUTH, 'the server requires a token: set FSYNCD_TOKEN or --token-file')
  if (!proofMatches(proof(token, 'server', nonce, challenge.nonce), challenge.proof)) {
    throw new FsyncdError(ErrorCode.AUTH, 'the server could not prove it knows the token (wrong token on one side?)')
  }
  await conn.send({ t: 'auth', proof: proof(token, 'client', nonce, challenge.nonce) })
}

/** Server side. Throws FsyncdError(AUTH/VERSION) after telling the client why. */
export async function serverHandshake (conn: Connection, token: string | undefined): Promise<void> {
  checkToken(token)
  const hello = await conn.expect('hello')
  const nonce = randomBytes(NONCE_BYTES)
  if (hello.version !== PROTOCOL_VERSION) {
    const err = new FsyncdError(ErrorCode.VERSION, `client speaks protocol ${hello.version}, this server ${PROTOCOL_VERSION}`)
    await conn.fail(err.code, err.message)
    throw err
  }
  await conn.send({
    t: 'challenge',
    version: PROTOCOL_VERSION,
    nonce,
    auth: token === undefined ? 'none' : 'hmac',
    proof: token === undefined ? null : proof(token, 'server', hello.nonce, nonce),
  })
  const auth = await conn.expect('auth')
  if (token !== undefined && !proofMatches(proof(token, 'client', hello.nonce, nonce), auth.proof)) {
    const err = new FsyncdError(ErrorCode.AUTH, 'authentication failed: wrong token')
    await conn.fail(err.code, err.message)
    throw err
  }
}
