/**
 * What the frames travel on: plain TCP, or TLS 1.3 keyed by the shared token (a pre-shared key,
 * so no certificates to make, pin or rotate; both sides prove the token in the TLS handshake and
 * again in ours). The PSK is derived from the token with HKDF, never the token itself; the
 * handshake still does an ephemeral (EC)DHE exchange (psk_dhe_ke), so a token leaked later does
 * not decrypt traffic recorded earlier.
 *
 * TLS 1.3 PSK in OpenSSL binds the key to SHA-256, hence the two SHA-256 cipher suites.
 */
import { hkdfSync } from 'node:crypto'
import { createRequire } from 'node:module'
import { connect as tcpConnect, type Socket } from 'node:net'
import type { ConnectionOptions, TLSSocket } from 'node:tls'
import { ErrorCode, FsyncdError } from './errors.js'

/** node:tls, loaded on first use: ~4 ms of every start of a client that runs without a token. */
let tlsModule: typeof import('node:tls') | undefined
const tls = (): typeof import('node:tls') => (tlsModule ??= createRequire(import.meta.url)('node:tls') as typeof import('node:tls'))

export const TLS_PSK_IDENTITY = 'fsyncd/1'
/** First byte of a TLS ClientHello (a handshake record); an fsyncd frame before auth starts with 0. */
export const TLS_HANDSHAKE_RECORD = 0x16
const TLS_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256'

/** The 32-byte TLS pre-shared key of a token. */
export function tlsKeyOf (token: string): Buffer {
  return Buffer.from(hkdfSync('sha256', token, 'fsyncd tls 1.3 psk', TLS_PSK_IDENTITY, 32))
}

export interface DialOptions {
  host: string
  port: number
  /** TLS 1.3 with this token's key; undefined = plain TCP. */
  tlsToken?: string | undefined
}

/**
 * Connects and, with a token, completes the TLS handshake. A TLS failure in the handshake is an
 * AUTH error (a wrong token, or a server without TLS); everything else is the socket's own error.
 */
export async function dial (opts: DialOptions): Promise<Socket> {
  const token = opts.tlsToken
  if (token === undefined) {
    const socket = tcpConnect({ host: opts.host, port: opts.port, noDelay: true })
    await settle(socket, 'connect')
    return socket
  }
  const key = tlsKeyOf(token)
  const options: ConnectionOptions = {
    host: opts.host,
    port: opts.port,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: TLS_CIPHERS,
    pskCallback: () => ({ psk: key, identity: TLS_PSK_IDENTITY }),
    // No certificate is involved: the PSK authenticates the server (one presented is refused below).
    checkServerIdentity: () => undefined,
  }
  const socket = tls().connect(options)
  socket.setNoDelay(true)
  try {
    await settle(socket, 'secureConnect')
  } catch (err) {
    throw tlsError(err)
  }
  // Only the PSK may authenticate the server: a certificate (any CA's) means another kind of peer.
  if (Object.keys(socket.getPeerCertificate()).length > 0) {
    socket.destroy()
    throw new FsyncdError(ErrorCode.AUTH, 'the server presented a certificate instead of proving the token: not an fsyncd server')
  }
  return socket
}

/** Server side: TLS over a freshly accepted socket (nothing read from it yet). */
export function acceptTls (raw: Socket, token: string): TLSSocket {
  const key = tlsKeyOf(token)
  const socket = new (tls().TLSSocket)(raw, {
    isServer: true,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ciphers: TLS_CIPHERS,
    pskCallback: (_socket: TLSSocket, identity: string) => identity === TLS_PSK_IDENTITY ? key : null,
  } as ConstructorParameters<typeof TLSSocket>[1])
  return socket
}

/** A TLS error from the handshake as an AUTH error that says what to check; others unchanged. */
export function tlsError (err: unknown): Error {
  const code = (err as { code?: unknown }).code
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER') {
    return new FsyncdError(ErrorCode.AUTH, 'the server does not speak TLS (it runs without a token, or with --insecure): ' +
      'give it the token, or pass --insecure to both sides', { cause: err })
  }
  if (typeof code === 'string' && code.startsWith('ERR_SSL_')) {
    return new FsyncdError(ErrorCode.AUTH,
      'TLS handshake failed: the token differs between client and server, or one side runs with --insecure ' +
      `(${code.slice(8).toLowerCase().replaceAll('_', ' ')})`, { cause: err })
  }
  return err as Error
}

async function settle (socket: Socket, event: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => { socket.off(event, onOk); reject(err) }
    const onOk = (): void => { socket.off('error', onError); resolve() }
    socket.once(event, onOk)
    socket.once('error', onError)
  })
}
