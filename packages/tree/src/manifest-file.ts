/**
 * A manifest on disk, with optional stat stamps per path and the manifest's digest. Written
 * atomically (temp + rename); always a cache: a missing, foreign or corrupt file reads as
 * "nothing known".
 *
 * Layout: msgpack of one map whose fields are columns (all paths in one string, numbers in
 * little-endian binaries, hashes back to back), then the SHA-256 of those bytes. 100k entries
 * load in ~0.1 s where one msgpack map per entry took ~0.35 s: no object per row to decode, no
 * copy per hash. The checksum is what lets a saved digest be trusted without recomputing it.
 */
import { Packr } from 'msgpackr'
import { type Entry, type Manifest, pathProblem } from '@fsyncd/protocol'
import { readChecked, writeChecked } from './checked-file.js'

/** What identifies the version of a file we hashed. */
export interface StatStamp { size: number, mtimeMs: number, ctimeMs: number, ino: number }

const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' })
const FORMAT_VERSION = 2
const HASH_BYTES = 32
const KIND = { file: 0, dir: 1, link: 2 } as const
/** Per row: size, mtimeMs, ctimeMs, ino; NaN size for a row without a stamp. */
const STAMP_FIELDS = 4

export type Row = [string, Entry, StatStamp | null]

export interface SavedManifest {
  /** The rows, built on the first call (every row was checked at load). */
  rows: () => Row[]
  /** The file's checksum: it names this saved state. */
  sum: Buffer
  /** The manifest's digest when it was saved (see Manifest.digest), if it was saved with it. */
  digest?: Buffer
}

export interface SaveOptions {
  stamps?: ReadonlyMap<string, StatStamp>
  /** Which entries to write (all by default). */
  keep?: (path: string, e: Entry) => boolean
  /** Save the manifest's digest too (only meaningful when every entry is kept). */
  digest?: boolean
}

/** Returns the written file's checksum. */
export async function saveManifest (file: string, tag: string, manifest: Manifest, opts: SaveOptions = {}): Promise<Buffer> {
  const { stamps, keep } = opts
  const paths: string[] = []
  const entries: Entry[] = []
  for (const [p, e] of manifest.entries()) {
    if (keep === undefined || keep(p, e)) {
      paths.push(p)
      entries.push(e)
    }
  }
  const n = paths.length
  const kinds = Buffer.alloc(n)
  const modes = new Uint16Array(n)
  const mtimes = new Float64Array(n)
  const sizes = new Float64Array(n)
  const stampCols = stamps === undefined ? undefined : new Float64Array(n * STAMP_FIELDS).fill(NaN)
  const hashes: Buffer[] = []
  const targets: string[] = []
  for (let i = 0; i < n; i++) {
    const e = entries[i] as Entry
    kinds[i] = KIND[e.kind]
    mtimes[i] = e.mtime
    if (e.kind === 'link') {
      targets.push(e.target)
      continue
    }
    modes[i] = e.mode
    if (e.kind === 'file') {
      sizes[i] = e.size
      hashes.push(e.hash)
      const s = stamps?.get(paths[i] as string)
      if (stampCols !== undefined && s !== undefined) stampCols.set([s.size, s.mtimeMs, s.ctimeMs, s.ino], i * STAMP_FIELDS)
    }
  }
  const body = packr.pack({
    v: FORMAT_VERSION,
    tag,
    n,
    paths: paths.join('\0'), // NUL is the one character no path holds
    kinds,
    modes: bytesOf(modes),
    mtimes: bytesOf(mtimes),
    sizes: bytesOf(sizes),
    hashes: Buffer.concat(hashes),
    targets,
    stamps: stampCols === undefined ? null : bytesOf(stampCols),
    digest: opts.digest === true ? manifest.digest() : null,
  })
  return await writeChecked(file, body)
}

/** Rows are all checked (paths, kinds, hash sizes) before any is returned. */
export async function loadManifest (file: string, tag: string): Promise<SavedManifest | undefined> {
  const checked = await readChecked(file)
  if (checked === undefined || checked.body.length === 0) return undefined
  const { body, sum } = checked
  let s: Record<string, unknown>
  try {
    s = packr.unpack(body) as Record<string, unknown>
  } catch {
    return undefined
  }
  if (s?.v !== FORMAT_VERSION || s.tag !== tag) return undefined
  const n = s.n
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || typeof s.paths !== 'string') return undefined
  const paths = n === 0 ? [] : s.paths.split('\0')
  const kinds = column(s.kinds, Uint8Array, n)
  const modes = column(s.modes, Uint16Array, n)
  const mtimes = column(s.mtimes, Float64Array, n)
  const sizes = column(s.sizes, Float64Array, n)
  const stamps = s.stamps === null ? null : column(s.stamps, Float64Array, n * STAMP_FIELDS)
  const hashes = s.hashes
  const targets = s.targets
  if (paths.length !== n || kinds === undefined || modes === undefined || mtimes === undefined || sizes === undefined || stamps === undefined ||
      !(hashes instanceof Uint8Array) || !Array.isArray(targets)) return undefined
  const digest = s.digest === null ? undefined : s.digest instanceof Uint8Array && s.digest.length === 32 ? Buffer.from(s.digest) : null
  if (digest === null) return undefined
  let files = 0
  let links = 0
  for (let i = 0; i < n; i++) {
    if (pathProblem(paths[i] as string) !== undefined) return undefined
    const k = kinds[i] as number
    if (k === KIND.file) files++
    else if (k === KIND.link) {
      if (typeof targets[links++] !== 'string') return undefined
    } else if (k !== KIND.dir) return undefined
  }
  if (hashes.length !== files * HASH_BYTES || targets.length !== links) return undefined
  let rows: Row[] | undefined
  const saved: SavedManifest = { rows: () => (rows ??= buildRows(n, paths, kinds, modes, mtimes, sizes, stamps, hashes, targets as string[])), sum }
  if (digest !== undefined) saved.digest = digest
  return saved
}

function buildRows (n: number, paths: string[], kinds: Uint8Array, modes: Uint16Array, mtimes: Float64Array, sizes: Float64Array, stamps: Float64Array | null, hashes: Uint8Array, targets: string[]): Row[] {
  // Views of one copy: a hash per file without an allocation per hash.
  const hashBytes = Buffer.from(hashes)
  const rows: Row[] = new Array(n)
  let fileNo = 0
  let linkNo = 0
  for (let i = 0; i < n; i++) {
    const p = paths[i] as string
    const mtime = mtimes[i] as number
    const k = kinds[i]
    if (k === KIND.file) {
      const hash = hashBytes.subarray(fileNo * HASH_BYTES, ++fileNo * HASH_BYTES)
      const j = i * STAMP_FIELDS
      const stamp = stamps === null || Number.isNaN(stamps[j]) ? null : { size: stamps[j] as number, mtimeMs: stamps[j + 1] as number, ctimeMs: stamps[j + 2] as number, ino: stamps[j + 3] as number }
      rows[i] = [p, { kind: 'file', mode: modes[i] as number, mtime, size: sizes[i] as number, hash }, stamp]
    } else if (k === KIND.dir) {
      rows[i] = [p, { kind: 'dir', mode: modes[i] as number, mtime }, null]
    } else {
      rows[i] = [p, { kind: 'link', mtime, target: targets[linkNo++] as string }, null]
    }
  }
  return rows
}

function bytesOf (a: Uint16Array | Float64Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength)
}

type Column = Uint8Array | Uint16Array | Float64Array
/** A binary field as `n` numbers, copied into memory aligned for them; undefined when it is not that. */
function column<T extends Column> (value: unknown, Type: { new (n: number): T, BYTES_PER_ELEMENT: number }, n: number): T | undefined {
  if (!(value instanceof Uint8Array) || value.length !== n * Type.BYTES_PER_ELEMENT) return undefined
  const out = new Type(n)
  new Uint8Array(out.buffer).set(value)
  return out
}
