/**
 * A manifest on disk (msgpack), with optional stat stamps per path. Written atomically (temp +
 * rename); always a cache: a missing, foreign or corrupt file reads as "nothing known".
 */
import { readFile, rename, writeFile } from 'node:fs/promises'
import { Packr } from 'msgpackr'
import { type Entry, fromWireEntry, type Manifest, pathProblem, toWireEntry, type WireEntry } from '@fsyncd/protocol'

/** What identifies the version of a file we hashed. */
export interface StatStamp { size: number, mtimeMs: number, ctimeMs: number, ino: number }

const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' })
const FORMAT_VERSION = 1

/** `keep`: which entries to write (all by default). */
export async function saveManifest (file: string, tag: string, manifest: Manifest, stamps?: ReadonlyMap<string, StatStamp>, keep?: (path: string, e: Entry) => boolean): Promise<void> {
  const rows: Array<[WireEntry, StatStamp | null]> = []
  for (const [p, e] of manifest.entries()) if (keep === undefined || keep(p, e)) rows.push([toWireEntry(p, e), stamps?.get(p) ?? null])
  const tmp = `${file}.${process.pid}.tmp`
  await writeFile(tmp, packr.pack({ v: FORMAT_VERSION, tag, rows }))
  await rename(tmp, file)
}

export async function loadManifest (file: string, tag: string): Promise<Array<[string, Entry, StatStamp | null]> | undefined> {
  let state: { v?: unknown, tag?: unknown, rows?: unknown }
  try {
    state = packr.unpack(await readFile(file)) as typeof state
  } catch {
    return undefined
  }
  if (state?.v !== FORMAT_VERSION || state.tag !== tag || !Array.isArray(state.rows)) return undefined
  const out: Array<[string, Entry, StatStamp | null]> = []
  for (const row of state.rows as unknown[]) {
    if (!Array.isArray(row) || !Array.isArray(row[0]) || typeof row[0][0] !== 'string' || pathProblem(row[0][0]) !== undefined) return undefined
    const [p, e] = fromWireEntry(row[0] as WireEntry)
    if (e.kind === 'file') {
      if (!(e.hash instanceof Uint8Array) || e.hash.length !== 32) return undefined
      e.hash = Buffer.from(e.hash)
    }
    out.push([p, e, (row[1] as StatStamp | null) ?? null])
  }
  return out
}
