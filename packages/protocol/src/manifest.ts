/**
 * A tree as a map path → Entry, with an index content hash → paths. Both sides build one: the
 * server of its destination, the client of its source and of what it believes the server holds.
 * `digest()` is computed the same way on both sides, so equal digests at connect mean the
 * client's cached view of the server is exact and no listing has to cross the wire.
 */
import { createHash } from 'node:crypto'
import type { Entry } from './messages.js'
import { isWithin } from './paths.js'

export class Manifest {
  readonly #entries = new Map<string, Entry>()
  /**
   * Content hash (as a 32-character latin1 string: cheaper to make than hex) → the path holding
   * it, or the paths when several do. Most content is held once: no Set for it (100k files
   * loaded ~2x faster, and half the garbage). Built on the first question about content: a
   * manifest nobody asks (a client's own tree; a view of the server when nothing is new) never
   * pays for it (100k files: ~35 ms).
   */
  #byHash: Map<string, string | Set<string>> | undefined
  #version = 0
  #digest: { version: number, value: Buffer } | undefined

  get size (): number {
    return this.#entries.size
  }

  get (path: string): Entry | undefined {
    return this.#entries.get(path)
  }

  has (path: string): boolean {
    return this.#entries.has(path)
  }

  entries (): IterableIterator<[string, Entry]> {
    return this.#entries.entries()
  }

  paths (): IterableIterator<string> {
    return this.#entries.keys()
  }

  /** Counts changes: equal versions mean equal contents (what a saved copy needs to know). */
  get version (): number {
    return this.#version
  }

  set (path: string, entry: Entry): void {
    this.delete(path)
    this.#version++
    this.#entries.set(path, entry)
    if (entry.kind === 'file' && this.#byHash !== undefined) index(this.#byHash, path, entry.hash)
  }

  /** Removes one entry (not its children). */
  delete (path: string): void {
    const old = this.#entries.get(path)
    if (old === undefined) return
    this.#version++
    this.#entries.delete(path)
    if (old.kind === 'file' && this.#byHash !== undefined) {
      const key = old.hash.toString('latin1')
      const paths = this.#byHash.get(key)
      if (paths === path) this.#byHash.delete(key)
      else if (typeof paths === 'object') {
        paths.delete(path)
        if (paths.size === 1) this.#byHash.set(key, paths.values().next().value as string)
      }
    }
  }

  /** Paths of `dir` and everything below it ('' = the whole tree). O(n): fine for the sizes a reconcile touches. */
  subtree (dir: string): string[] {
    if (dir !== '') {
      const e = this.#entries.get(dir)
      if (e === undefined) return []
      if (e.kind !== 'dir') return [dir]
    }
    const out: string[] = []
    for (const p of this.#entries.keys()) if (isWithin(p, dir)) out.push(p)
    return out
  }

  deleteTree (dir: string): void {
    for (const p of this.subtree(dir)) this.delete(p)
  }

  /** Renames `from` and everything below it to `to`. */
  moveTree (from: string, to: string): void {
    const moved: Array<[string, Entry]> = []
    for (const p of this.subtree(from)) {
      moved.push([to + p.slice(from.length), this.#entries.get(p) as Entry])
      this.delete(p)
    }
    for (const [p, e] of moved) this.set(p, e)
  }

  /** Paths holding content with this SHA-256 (a copy: safe to hold while the manifest changes). */
  pathsWithHash (hash: Buffer): string[] {
    const paths = this.#contentIndex().get(hash.toString('latin1'))
    return paths === undefined ? [] : typeof paths === 'string' ? [paths] : [...paths]
  }

  /** How many paths hold content with this SHA-256 (without copying them). */
  countWithHash (hash: Buffer): number {
    const paths = this.#contentIndex().get(hash.toString('latin1'))
    return paths === undefined ? 0 : typeof paths === 'string' ? 1 : paths.size
  }

  hasContent (hash: Buffer): boolean {
    return this.#contentIndex().has(hash.toString('latin1'))
  }

  #contentIndex (): Map<string, string | Set<string>> {
    if (this.#byHash === undefined) {
      this.#byHash = new Map()
      for (const [p, e] of this.#entries) if (e.kind === 'file') index(this.#byHash, p, e.hash)
    }
    return this.#byHash
  }

  clone (): Manifest {
    const m = new Manifest()
    for (const [p, e] of this.#entries) m.set(p, e)
    return m
  }

  /**
   * Takes `value` as the digest of the entries as they are now: for a manifest just loaded
   * from a file that saved its digest beside it (and a checksum over both).
   */
  restoreDigest (value: Buffer): void {
    this.#digest = { version: this.#version, value }
  }

  /**
   * SHA-256 over the sorted entries: paths, kinds, modes, file sizes, mtimes and hashes, link
   * targets. Folder mtimes are left out: every change inside a folder moves them, and the server
   * restores them itself. Kept until the manifest changes (a server with 100k files answers
   * every connect with it: ~160 ms each).
   */
  digest (): Buffer {
    if (this.#digest?.version === this.#version) return this.#digest.value
    const h = createHash('sha256')
    const paths = [...this.#entries.keys()].sort()
    for (const p of paths) {
      const e = this.#entries.get(p) as Entry
      switch (e.kind) {
        case 'file': h.update(`${p}\0f\0${e.mode}\0${e.size}\0${e.mtime}\0`).update(e.hash); break
        case 'dir': h.update(`${p}\0d\0${e.mode}\0`); break
        case 'link': h.update(`${p}\0l\0${e.target}\0`); break
      }
      h.update('\n')
    }
    const value = h.digest()
    this.#digest = { version: this.#version, value }
    return value
  }
}

/** Entries equal in everything the digest covers. */
export function sameEntry (a: Entry, b: Entry): boolean {
  if (a.kind !== b.kind) return false
  if (a.kind === 'file' && b.kind === 'file') return a.size === b.size && a.mtime === b.mtime && a.mode === b.mode && a.hash.equals(b.hash)
  if (a.kind === 'dir' && b.kind === 'dir') return a.mode === b.mode
  if (a.kind === 'link' && b.kind === 'link') return a.target === b.target
  return false
}

function index (byHash: Map<string, string | Set<string>>, path: string, hash: Buffer): void {
  const key = hash.toString('latin1')
  const paths = byHash.get(key)
  if (paths === undefined) byHash.set(key, path)
  else if (typeof paths === 'string') byHash.set(key, new Set([paths, path]))
  else paths.add(path)
}
