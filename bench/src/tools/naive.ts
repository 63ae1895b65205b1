/**
 * The naive baseline: what a plain uploader costs. The client remembers the stat stamp (kind,
 * mode, size, mtime, ctime, inode) of every path it sent; a sync sends, uncompressed, the full
 * bytes of every file whose stamp changed, plus folders, symlinks and deletions. A moved folder
 * is a deletion plus all its files again. The sink (in the bench process) writes each file to a
 * temp name and renames it (no fsync), then answers "ok" at the end of the stream.
 *
 * Stream: records of [u32 BE header length][JSON header][size bytes if a file].
 */
import { createReadStream } from 'node:fs'
import { chmod, lstat, mkdir, open, readdir, readlink, rename, rm, symlink, type FileHandle } from 'node:fs/promises'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { CountingProxy, type Link } from '../proxy.js'
import { failed, type SyncResult, type Tool } from './tool.js'

type Header =
  | { op: 'rm', path: string }
  | { op: 'dir', path: string, mode: number }
  | { op: 'link', path: string, target: string }
  | { op: 'file', path: string, mode: number, size: number }
  | { op: 'end' }

/** Reads exact byte counts from a socket, with the socket's own backpressure. */
class ByteReader {
  readonly #it: AsyncIterator<Buffer>
  #buf: Buffer = Buffer.alloc(0)
  constructor (socket: Socket) { this.#it = socket[Symbol.asyncIterator]() as AsyncIterator<Buffer> }

  async #fill (): Promise<boolean> {
    const r = await this.#it.next()
    if (r.done === true) return false
    this.#buf = this.#buf.length === 0 ? r.value : Buffer.concat([this.#buf, r.value])
    return true
  }

  async exactly (n: number): Promise<Buffer> {
    while (this.#buf.length < n) if (!await this.#fill()) throw new Error('naive: stream cut')
    const out = this.#buf.subarray(0, n)
    this.#buf = this.#buf.subarray(n)
    return out
  }

  async upTo (n: number): Promise<Buffer> {
    if (this.#buf.length === 0 && !await this.#fill()) throw new Error('naive: stream cut')
    const out = this.#buf.subarray(0, n)
    this.#buf = this.#buf.subarray(out.length)
    return out
  }
}

class NaiveSink {
  readonly #server: Server
  port = 0

  constructor (readonly dest: string) {
    this.#server = createServer((socket) => {
      this.#serve(socket).catch((err: unknown) => { socket.destroy(err as Error) })
    })
  }

  async listen (): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    this.port = (this.#server.address() as AddressInfo).port
  }

  async #serve (socket: Socket): Promise<void> {
    const r = new ByteReader(socket)
    for (;;) {
      const h = JSON.parse((await r.exactly((await r.exactly(4)).readUInt32BE(0))).toString()) as Header
      if (h.op === 'end') break
      const abs = join(this.dest, h.path)
      if (h.op === 'rm') await rm(abs, { recursive: true, force: true })
      else if (h.op === 'dir') {
        const st = await lstat(abs).catch(() => undefined)
        if (st !== undefined && !st.isDirectory()) await rm(abs, { force: true })
        await mkdir(abs, { recursive: true })
        await chmod(abs, h.mode)
      } else if (h.op === 'link') {
        await rm(abs, { recursive: true, force: true })
        await mkdir(dirname(abs), { recursive: true })
        await symlink(h.target, abs)
      } else {
        const tmp = join(dirname(abs), `.naive-${process.pid}.tmp`)
        await mkdir(dirname(abs), { recursive: true })
        const fh: FileHandle = await open(tmp, 'w', h.mode)
        try {
          for (let left = h.size; left > 0;) {
            const chunk = await r.upTo(left)
            await fh.write(chunk)
            left -= chunk.length
          }
          await fh.chmod(h.mode)
        } finally { await fh.close() }
        const st = await lstat(abs).catch(() => undefined)
        if (st?.isDirectory() === true) await rm(abs, { recursive: true, force: true })
        await rename(tmp, abs)
      }
    }
    socket.end('ok')
  }

  async close (): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

interface Scanned { kind: 'file' | 'dir' | 'link', mode: number, size: number, stamp: string }

async function scan (root: string): Promise<Map<string, Scanned>> {
  const out = new Map<string, Scanned>()
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const p = rel === '' ? name : `${rel}/${name}`
      const st = await lstat(join(root, p), { bigint: true })
      const kind = st.isSymbolicLink() ? 'link' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : undefined
      if (kind === undefined) continue
      const mode = Number(st.mode & 0o7777n)
      out.set(p, { kind, mode, size: Number(st.size), stamp: `${kind} ${mode} ${st.size} ${st.mtimeNs} ${st.ctimeNs} ${st.ino}` })
      if (kind === 'dir') await walk(p)
    }
  }
  await walk('')
  return out
}

async function writeAll (socket: Socket, data: Buffer): Promise<void> {
  if (socket.write(data)) return
  await new Promise<void>((resolve, reject) => {
    const onDrain = (): void => { socket.off('close', onClose); resolve() }
    const onClose = (): void => { socket.off('drain', onDrain); reject(new Error('naive: connection closed')) }
    socket.once('drain', onDrain)
    socket.once('close', onClose)
  })
}

async function record (socket: Socket, h: Header): Promise<void> {
  const json = Buffer.from(JSON.stringify(h))
  const len = Buffer.alloc(4)
  len.writeUInt32BE(json.length)
  await writeAll(socket, Buffer.concat([len, json]))
}

export class NaiveTool implements Tool {
  readonly name = 'naive'
  #src = ''
  #sink: NaiveSink | undefined
  /** path → stamp as last sent. */
  #sent = new Map<string, string>()

  async open (src: string, dest: string): Promise<void> {
    this.#src = src
    this.#sink = new NaiveSink(dest)
    await this.#sink.listen()
  }

  async sync (link?: Link): Promise<SyncResult> {
    const sink = this.#sink as NaiveSink
    const proxy = new CountingProxy(sink.port, link)
    await proxy.listen()
    const t0 = performance.now()
    try {
      const now = await scan(this.#src)
      const socket = connect(proxy.port, '127.0.0.1')
      await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
      const answer = new Promise<string>((resolve, reject) => {
        let got = ''
        socket.on('data', (d: Buffer) => { got += d.toString() })
        socket.on('end', () => resolve(got))
        socket.on('error', reject)
      })
      let files = 0
      let bytes = 0
      // Deletions (and kind changes), only the top-most path of a removed subtree.
      const removed = new Set<string>()
      for (const [p, stamp] of this.#sent) {
        const e = now.get(p)
        if (e !== undefined && e.kind === stamp.split(' ')[0]) continue
        removed.add(p)
        if (!removed.has(p.slice(0, Math.max(0, p.lastIndexOf('/'))))) await record(socket, { op: 'rm', path: p })
      }
      for (const [p, e] of now) {
        if (this.#sent.get(p) === e.stamp) continue
        if (e.kind === 'dir') await record(socket, { op: 'dir', path: p, mode: e.mode })
        else if (e.kind === 'link') await record(socket, { op: 'link', path: p, target: await readlink(join(this.#src, p)) })
        else {
          await record(socket, { op: 'file', path: p, mode: e.mode, size: e.size })
          let sent = 0
          for await (const chunk of createReadStream(join(this.#src, p), { highWaterMark: 1024 * 1024, end: Math.max(0, e.size - 1) })) {
            const b = chunk as Buffer
            if (e.size === 0) break
            await writeAll(socket, b)
            sent += b.length
          }
          if (sent !== e.size) throw new Error(`naive: ${p} changed while being sent`)
          files++
          bytes += e.size
        }
      }
      await record(socket, { op: 'end' })
      const ok = await answer
      const wallMs = performance.now() - t0
      socket.destroy()
      await proxy.drained()
      if (ok !== 'ok') return failed(this.name, `sink answered ${JSON.stringify(ok)}`)
      this.#sent = new Map([...now].map(([p, e]) => [p, e.stamp]))
      return { tool: this.name, up: proxy.up, down: proxy.down, total: proxy.total, wallMs, own: `${files} files, ${bytes} B of content` }
    } finally {
      await proxy.close()
    }
  }

  async close (): Promise<void> {
    await this.#sink?.close()
  }
}
