/**
 * Uploads cut short (a dropped connection, a killed client, a restarted server) keep what
 * arrived: the temp file is made durable and filed under the content it was becoming, SHA-256
 * and size, in DEST/.fsyncd/partial. The server lists them in `ready`; the next upload of that
 * content, from any client and to any path, resumes where it stopped once the prefix's hash
 * matches (protocol/SPEC.md, `ready.partials` and `file.resume`). Bounded: the newest MAX_KEPT,
 * none older than MAX_AGE_MS, dropped as soon as their content is installed.
 */
import { mkdirSync, readdirSync, renameSync, statSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { MAX_PARTIALS, type PartialUpload } from '@fsyncd/protocol'
import type { IncomingFile } from './incoming-file.js'

/** Less than this is cheaper to send again than to keep. */
export const PARTIAL_MIN_BYTES = 1024 * 1024
const MAX_KEPT = 16
const MAX_AGE_MS = 7 * 24 * 3600 * 1000
/** `<sha256 hex>-<size>`: what the partial was becoming. Temp files of uploads start the same way. */
const NAME = /^([0-9a-f]{64})-(\d{1,16})$/
const TEMP_NAME = /^([0-9a-f]{64}-\d{1,16})\.[0-9a-f]{16}$/

interface Kept { hash: Buffer, size: number, have: number, at: number }

export function partialName (hash: Buffer, size: number): string {
  return `${hash.toString('hex')}-${size}`
}

export class Partials {
  readonly dir: string
  /** By name, oldest first. */
  readonly #kept = new Map<string, Kept>()

  /**
   * Loads what `dir` keeps. Temp files of uploads a crash interrupted, in `leftovers`, are filed
   * first: their names say what they were becoming (see Store#tempFileFor), and the prefix check
   * on resume catches a tail the crash did not write.
   */
  constructor (dir: string, leftovers?: string) {
    this.dir = dir
    mkdirSync(dir, { recursive: true })
    for (const name of leftovers === undefined ? [] : readdirSync(leftovers)) {
      const m = TEMP_NAME.exec(name)
      const st = m === null ? undefined : statSync(join(leftovers as string, name), { throwIfNoEntry: false })
      if (m === null || st === undefined || !st.isFile() || st.size < PARTIAL_MIN_BYTES) continue
      const kept = statSync(join(dir, m[1] as string), { throwIfNoEntry: false })
      if (kept === undefined || kept.size < st.size) renameSync(join(leftovers as string, name), join(dir, m[1] as string))
    }
    const now = Date.now()
    const found: Array<[string, Kept]> = []
    for (const name of readdirSync(dir)) {
      const m = NAME.exec(name)
      const st = m === null ? undefined : statSync(join(dir, name), { throwIfNoEntry: false })
      if (m === null || st === undefined || !st.isFile() || now - st.mtimeMs > MAX_AGE_MS || st.size > Number(m[2])) {
        this.#unlink(name)
        continue
      }
      found.push([name, { hash: Buffer.from(m[1] as string, 'hex'), size: Number(m[2]), have: st.size, at: st.mtimeMs }])
    }
    for (const [name, kept] of found.sort((a, b) => a[1].at - b[1].at)) this.#kept.set(name, kept)
    this.#evict()
  }

  /** What a client may resume, newest first. */
  list (): PartialUpload[] {
    this.#expire()
    return [...this.#kept.values()].reverse().slice(0, MAX_PARTIALS).map((k) => [k.hash, k.size, k.have])
  }

  /** Keeps an upload cut short if it is worth it (and holds more than one already kept); else discards it. */
  async keep (file: IncomingFile, hash: Buffer, size: number): Promise<void> {
    const name = partialName(hash, size)
    if (file.size < PARTIAL_MIN_BYTES || file.size >= size || (this.#kept.get(name)?.have ?? 0) >= file.size) {
      file.discard()
      return
    }
    this.#kept.delete(name)
    await file.keepAs(join(this.dir, name))
    this.#kept.set(name, { hash, size, have: file.size, at: Date.now() })
    this.#evict()
  }

  /** Hands over the partial upload of this content (its path), or undefined. It is no longer listed. */
  take (hash: Buffer, size: number): string | undefined {
    const name = partialName(hash, size)
    if (!this.#kept.delete(name)) return undefined
    return join(this.dir, name)
  }

  /** The content was installed: a partial of it is of no more use. */
  drop (hash: Buffer, size: number): void {
    const name = partialName(hash, size)
    if (this.#kept.delete(name)) this.#unlink(name)
  }

  /** Drops what is older than MAX_AGE_MS (the oldest come first). */
  #expire (): void {
    const cutoff = Date.now() - MAX_AGE_MS
    for (const [name, kept] of this.#kept) {
      if (kept.at >= cutoff) break
      this.#kept.delete(name)
      this.#unlink(name)
    }
  }

  #evict (): void {
    for (const name of this.#kept.keys()) {
      if (this.#kept.size <= MAX_KEPT) break
      this.#kept.delete(name)
      this.#unlink(name)
    }
  }

  #unlink (name: string): void {
    try { unlinkSync(join(this.dir, name)) } catch {}
  }
}
