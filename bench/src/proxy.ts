/**
 * A TCP proxy that counts what it forwards each way. Every tool talks to its server through one,
 * so the byte figures are measured the same way for all (framing, handshakes and all included).
 * Given a `Link`, it also makes each direction of a connection that link: bytes leave at its rate
 * and arrive half a round trip later (`bench --link`).
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'

/** A network path: its rate each way, and its round-trip time. */
export interface Link { mbit: number, rttMs: number }

/** Parses `MBIT/RTT_MS`, e.g. `100/10`. */
export function parseLink (text: string): Link {
  const m = /^(\d+(?:\.\d+)?)\/(\d+(?:\.\d+)?)$/.exec(text)
  const mbit = Number(m?.[1])
  const rttMs = Number(m?.[2])
  if (m === null || !(mbit > 0 && mbit <= 100_000) || !(rttMs >= 0 && rttMs <= 10_000)) throw new Error(`--link needs MBIT/RTT_MS, e.g. 100/10 (got ${text})`)
  return { mbit, rttMs }
}

/**
 * One direction of a connection over a `Link`: what `from` sends reaches `to` once the link has
 * carried it (serialized at the link's rate behind what went before) and half a round trip has
 * passed. In order: one queue, one timer. `from` is paused while more than two round trips' worth
 * of bytes (256 KiB at least) is on the way, as a sender is held back by a full TCP window.
 */
class LinkPipe {
  readonly #queue: Array<{ at: number, data: Buffer | undefined }> = []
  readonly #bytesPerMs: number
  readonly #oneWay: number
  readonly #limit: number
  #free = 0
  #onTheWay = 0
  #timer: NodeJS.Timeout | undefined

  constructor (readonly from: Socket, readonly to: Socket, link: Link, count: (n: number) => void) {
    this.#bytesPerMs = link.mbit * 1e6 / 8 / 1000
    this.#oneWay = link.rttMs / 2
    this.#limit = Math.max(256 * 1024, 2 * link.rttMs * this.#bytesPerMs)
    from.on('data', (d: Buffer) => {
      count(d.length)
      this.#free = Math.max(this.#free, performance.now()) + d.length / this.#bytesPerMs
      this.#onTheWay += d.length
      if (this.#onTheWay > this.#limit) from.pause()
      this.#add(d)
    })
    from.on('end', () => { this.#end() })
    from.on('close', () => { this.#end() })
  }

  #ended = false

  #end (): void {
    if (this.#ended) return
    this.#ended = true
    this.#add(undefined)
  }

  #add (data: Buffer | undefined): void {
    this.#queue.push({ at: Math.max(this.#free, performance.now()) + this.#oneWay, data })
    if (this.#timer === undefined) this.#arm()
  }

  #arm (): void {
    const head = this.#queue[0]
    if (head === undefined) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      const now = performance.now()
      while (this.#queue.length > 0 && (this.#queue[0] as { at: number }).at <= now + 0.5) {
        const { data } = this.#queue.shift() as { data: Buffer | undefined }
        if (data === undefined) {
          this.to.end()
          continue
        }
        this.#onTheWay -= data.length
        if (!this.to.destroyed) this.to.write(data)
      }
      if (this.from.isPaused() && this.#onTheWay <= this.#limit / 2) this.from.resume()
      this.#arm()
    }, Math.max(0, head.at - performance.now()))
  }
}

export class CountingProxy {
  up = 0
  down = 0
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  #open = 0
  #idle: (() => void)[] = []

  /** Connections accepted from now on go over this link (none: straight through). */
  link: Link | undefined

  constructor (readonly targetPort: number, link?: Link) {
    this.link = link
    this.#server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1')
      this.#open++
      this.#sockets.add(client)
      this.#sockets.add(upstream)
      const link = this.link
      if (link === undefined) {
        client.on('data', (d: Buffer) => { this.up += d.length })
        upstream.on('data', (d: Buffer) => { this.down += d.length })
        client.pipe(upstream)
        upstream.pipe(client)
      } else {
        // Each pipe ends (or cuts) its far side once what is on the way has arrived.
        new LinkPipe(client, upstream, link, (n) => { this.up += n }) // eslint-disable-line no-new
        new LinkPipe(upstream, client, link, (n) => { this.down += n }) // eslint-disable-line no-new
      }
      let closed = 0
      const onClose = (s: Socket): void => {
        this.#sockets.delete(s)
        if (++closed === 2) {
          this.#open--
          if (this.#open === 0) for (const f of this.#idle.splice(0)) f()
        }
      }
      client.on('error', () => upstream.destroy())
      upstream.on('error', () => client.destroy())
      client.on('close', () => { if (link === undefined) upstream.end(); onClose(client) })
      upstream.on('close', () => { if (link === undefined) client.end(); onClose(upstream) })
    })
  }

  port = 0

  async listen (): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    this.port = (this.#server.address() as AddressInfo).port
    return this.port
  }

  get total (): number { return this.up + this.down }

  reset (): void {
    this.up = 0
    this.down = 0
  }

  /** Resolves once every proxied connection has closed (so the counts are final), or after `ms`. */
  async drained (ms = 5000): Promise<void> {
    if (this.#open === 0) return
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms)
      this.#idle.push(() => { clearTimeout(t); resolve() })
    })
  }

  async close (): Promise<void> {
    for (const s of this.#sockets) s.destroy()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}
