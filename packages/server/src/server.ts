/**
 * `fsyncd serve`: a TCP listener that runs one Session per connection against one Store.
 * Binds 127.0.0.1 unless told otherwise; without a token it accepts loopback peers only; with a
 * token every connection is TLS 1.3 keyed by it (unless `insecure`).
 * Lifecycle (after undici's dispatcher): `listen()` once, `close()` stops accepting and lets
 * sessions finish, `destroy()` cuts them.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { acceptTls, Connection, ErrorCode, TLS_HANDSHAKE_RECORD, tlsError, zstdLoadError } from '@fsyncd/protocol'
import { History } from './history.js'
import { Session } from './session.js'
import { Store } from './store.js'

export interface SyncServerOptions {
  dest: string
  host?: string
  port?: number
  /** Shared secret; undefined = no auth, loopback clients only. */
  token?: string | undefined
  /** Plain TCP even with a token. Off: a token means TLS 1.3 with the token as pre-shared key. */
  insecure?: boolean
  log: Logger
  maxConnections?: number
  authTimeoutMs?: number
  /** A connection that sends nothing for this long is closed (clients ping while idle). */
  idleTimeoutMs?: number
}

/** Connections that have not authenticated yet, at most (the oldest is dropped for a new one). */
const MAX_PRE_AUTH = 64

export function isLoopback (address: string | undefined): boolean {
  if (address === undefined) return false
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.')
}

export class SyncServer {
  readonly #opts: SyncServerOptions
  readonly #log: Logger
  readonly #sockets = new Set<Socket>()
  /** Unauthenticated connections, oldest first, each with how to drop it. */
  readonly #preAuth = new Map<Socket, () => void>()
  readonly #authenticated = new Set<Socket>()
  readonly #sessions = new Set<Promise<void>>()
  #server: Server | undefined
  #store: Store | undefined
  #history: History | undefined

  constructor (opts: SyncServerOptions) {
    this.#opts = opts
    this.#log = opts.log
  }

  get store (): Store | undefined {
    return this.#store
  }

  /** Opens the destination and starts listening. Resolves with the bound address. */
  async listen (): Promise<AddressInfo> {
    if (this.#server !== undefined) throw new Error('already listening')
    // Clients compress with zstd: a server that could not decode it would refuse every upload.
    const noZstd = zstdLoadError()
    if (noZstd !== undefined) throw noZstd
    const started = Date.now()
    this.#store = await Store.open(this.#opts.dest, {
      onSkip: (path, reason) => this.#log.warn({ path, reason }, 'skipped'),
    })
    this.#log.info({ dest: this.#opts.dest, entries: this.#store.manifest.size, ms: Date.now() - started }, 'destination indexed')
    this.#history = new History(this.#opts.dest)
    const server = createServer({ noDelay: true }, (socket) => this.#accept(socket))
    this.#server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.#opts.port ?? 7000, this.#opts.host ?? '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
    return server.address() as AddressInfo
  }

  #accept (socket: Socket): void {
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
    const log = this.#log.child({ peer })
    const token = this.#opts.token
    if (token === undefined && !isLoopback(socket.remoteAddress)) {
      log.warn('non-loopback client refused: the server runs without a token')
      void new Connection(socket).fail(ErrorCode.AUTH, 'this server has no token and accepts loopback clients only')
      return
    }
    // Strangers that have not authenticated yet live in a bounded pool of their own: when it is
    // full, the oldest connection of the address holding the most is dropped. A flood from one
    // address evicts itself; others' handshakes go on.
    if (this.#preAuth.size >= MAX_PRE_AUTH) this.#evictPreAuth()
    this.#preAuth.set(socket, () => socket.destroy())
    this.#sockets.add(socket)
    socket.on('close', () => {
      this.#sockets.delete(socket)
      this.#preAuth.delete(socket)
      this.#authenticated.delete(socket)
    })
    const authTimeoutMs = this.#opts.authTimeoutMs ?? 10_000
    if (token === undefined || this.#opts.insecure === true) {
      this.#startSession(socket, socket, log, authTimeoutMs)
      return
    }
    // TLS first, within the same pre-auth deadline: a peer that cannot complete it (another key,
    // silence) never reaches a Session. A plain client is told why in a plain frame: our frames
    // start with a zero byte before auth, a TLS ClientHello with 0x16.
    const started = Date.now()
    const deadline = setTimeout(() => {
      log.info('TLS handshake timed out')
      socket.destroy()
    }, authTimeoutMs)
    socket.once('close', () => clearTimeout(deadline))
    socket.on('error', (err) => log.debug({ err: err.message }, 'socket error'))
    socket.once('data', (first: Buffer) => {
      socket.pause()
      socket.unshift(first)
      if (first[0] !== TLS_HANDSHAKE_RECORD) {
        clearTimeout(deadline)
        log.info('plain client refused: this server requires TLS')
        void new Connection(socket).fail(ErrorCode.AUTH, 'this server requires TLS 1.3 keyed by the token: give the client the token (and no --insecure)')
        return
      }
      const tls = acceptTls(socket, token)
      const onError = (err: Error): void => {
        clearTimeout(deadline)
        log.info({ err: tlsError(err).message }, 'TLS handshake failed')
        socket.destroy()
      }
      tls.once('error', onError)
      tls.once('secure', () => {
        clearTimeout(deadline)
        tls.off('error', onError)
        this.#startSession(socket, tls, log, Math.max(1, authTimeoutMs - (Date.now() - started)))
      })
    })
  }

  #evictPreAuth (): void {
    const count = new Map<string | undefined, number>()
    for (const s of this.#preAuth.keys()) count.set(s.remoteAddress, (count.get(s.remoteAddress) ?? 0) + 1)
    let busiest: string | undefined
    let most = 0
    for (const [address, n] of count) if (n > most) { busiest = address; most = n }
    for (const [s, evict] of this.#preAuth) {
      if (s.remoteAddress !== busiest) continue
      this.#preAuth.delete(s)
      evict()
      return
    }
  }

  /** Runs the protocol over `stream` (the socket itself, or TLS over it). */
  #startSession (socket: Socket, stream: Duplex, log: Logger, authTimeoutMs: number): void {
    const conn = new Connection(stream)
    this.#preAuth.set(socket, () => { void conn.fail(ErrorCode.TIMEOUT, 'too many connections waiting to authenticate') })
    socket.setTimeout(this.#opts.idleTimeoutMs ?? 120_000, () => {
      log.info('idle timeout')
      void conn.fail(ErrorCode.TIMEOUT, 'idle for too long')
    })
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
    const session = new Session(conn, this.#store as Store, log, this.#opts.token, { history: this.#history, peer })
    const onAuthenticated = (): boolean => {
      this.#preAuth.delete(socket)
      if (this.#authenticated.size >= (this.#opts.maxConnections ?? 32)) {
        log.warn('too many clients: refused')
        return false
      }
      this.#authenticated.add(socket)
      return true
    }
    const done = session.run({ authTimeoutMs, onAuthenticated }).finally(() => {
      this.#sessions.delete(done)
      log.info(session.stats, 'session ended')
    })
    this.#sessions.add(done)
  }

  /** Stops accepting, waits for sessions to end (or cuts them after `graceMs`), saves the index. */
  async close (graceMs = 5000): Promise<void> {
    const server = this.#server
    if (server === undefined) return
    this.#server = undefined
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    const timer = setTimeout(() => { for (const s of this.#sockets) s.destroy() }, graceMs)
    await Promise.allSettled([...this.#sessions])
    clearTimeout(timer)
    for (const s of this.#sockets) s.destroy()
    await closed
    await this.#store?.close()
  }
}
