/**
 * Real loopback sockets for the protocol tests: a connected TCP pair on 127.0.0.1 port 0, the
 * same pair wrapped in `Connection`s, and a TCP proxy that records every byte in both directions.
 * Everything opened is closed in the test's teardown.
 */
import { once } from 'node:events'
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net'
import { Connection } from '../../src/index.js'

interface Teardown { teardown: (fn: () => void | Promise<void>) => void }

async function listen (server: Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return (server.address() as AddressInfo).port
}

async function closeServer (server: Server): Promise<void> {
  if (!server.listening) return
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

export interface SocketPair { client: Socket, server: Socket }

/** A connected TCP pair: `client` from net.connect, `server` the accepted socket. */
export async function socketPair (t: Teardown, port?: number): Promise<SocketPair & { port: number }> {
  const listener = createServer({ pauseOnConnect: false })
  const accepted = once(listener, 'connection') as Promise<[Socket]>
  const listenPort = await listen(listener)
  const client = connect(port ?? listenPort, '127.0.0.1')
  await once(client, 'connect')
  const [server] = await accepted
  t.teardown(async () => {
    client.destroy()
    server.destroy()
    await closeServer(listener)
  })
  return { client, server, port: listenPort }
}

export interface ConnectionPair { client: Connection, server: Connection, sockets: SocketPair }

export async function connectionPair (t: Teardown, opts: { client?: ConstructorParameters<typeof Connection>[1], server?: ConstructorParameters<typeof Connection>[1] } = {}): Promise<ConnectionPair> {
  const sockets = await socketPair(t)
  return { client: new Connection(sockets.client, opts.client), server: new Connection(sockets.server, opts.server), sockets }
}

export interface RecordingProxy {
  /** Bytes the client wrote, in order. */
  readonly upstream: () => Buffer
  /** Bytes the server wrote, in order. */
  readonly downstream: () => Buffer
}

/**
 * A server socket and a client socket joined through a recording TCP proxy:
 * client ⇄ proxy ⇄ server, three real connections.
 */
export async function proxiedPair (t: Teardown): Promise<SocketPair & RecordingProxy> {
  const target = createServer()
  const accepted = once(target, 'connection') as Promise<[Socket]>
  const targetPort = await listen(target)
  const up: Buffer[] = []
  const down: Buffer[] = []
  const open: Socket[] = []
  const proxy = createServer((inbound) => {
    const outbound = connect(targetPort, '127.0.0.1')
    open.push(inbound, outbound)
    inbound.on('data', (b: Buffer) => { up.push(Buffer.from(b)); outbound.write(b) })
    outbound.on('data', (b: Buffer) => { down.push(Buffer.from(b)); inbound.write(b) })
    inbound.on('end', () => outbound.end())
    outbound.on('end', () => inbound.end())
    inbound.on('error', () => outbound.destroy())
    outbound.on('error', () => inbound.destroy())
    inbound.on('close', () => outbound.destroy())
    outbound.on('close', () => inbound.destroy())
  })
  const proxyPort = await listen(proxy)
  const client = connect(proxyPort, '127.0.0.1')
  await once(client, 'connect')
  const [server] = await accepted
  t.teardown(async () => {
    client.destroy()
    server.destroy()
    for (const s of open) s.destroy()
    await closeServer(proxy)
    await closeServer(target)
  })
  return { client, server, upstream: () => Buffer.concat(up), downstream: () => Buffer.concat(down) }
}

/** Resolves with the promise's value, or rejects naming `what` after `ms`: a bounded wait. */
export async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Whether the promise settles within `ms` (it is left running either way; its rejection is observed). */
export async function settlesWithin (promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const settled = promise.then(() => true, () => true)
  const timeout = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms) })
  try {
    return await Promise.race([settled, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Settles to the rejection reason, or fails if the promise resolves. */
export async function rejection (promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection, but the promise resolved')
}
