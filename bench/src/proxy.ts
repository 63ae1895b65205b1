/**
 * A TCP proxy that counts what it forwards each way. Every tool talks to its server through one,
 * so the byte figures are measured the same way for all (framing, handshakes and all included).
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'

export class CountingProxy {
  up = 0
  down = 0
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  #open = 0
  #idle: (() => void)[] = []

  constructor (readonly targetPort: number) {
    this.#server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1')
      this.#open++
      this.#sockets.add(client)
      this.#sockets.add(upstream)
      client.on('data', (d: Buffer) => { this.up += d.length })
      upstream.on('data', (d: Buffer) => { this.down += d.length })
      client.pipe(upstream)
      upstream.pipe(client)
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
      client.on('close', () => { upstream.end(); onClose(client) })
      upstream.on('close', () => { client.end(); onClose(upstream) })
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
