/**
 * The sync plan: given the local tree and the client's model of the server's tree, the list of
 * operations that makes the server equal to the local tree, cheapest first. Pure: it reads two
 * manifests and updates `remote` to what the server will hold once the plan is applied.
 *
 * Nothing the server already has is sent again:
 *  - a folder whose whole subtree now stands at another path becomes one `move`;
 *  - a file whose content left its old path becomes a `move` of that file;
 *  - a file whose content the server holds anywhere becomes a `file` with `have` (a local copy);
 *  - otherwise the file is uploaded (the delta path may still find parts of it on the server);
 *    so is a file whose hash is still pending, and `remote` then lacks it until the upload hashes it.
 * Deletes come last, so content that copies need is still there when they run.
 */
import { createHash } from 'node:crypto'
import { type Entry, isWithin, type Manifest, parentOf } from '@fsyncd/protocol'
import { isHashPending } from '@fsyncd/tree'

export type FileEntry = Extract<Entry, { kind: 'file' }>

export type PlannedOp =
  | { t: 'mkdir', path: string, mode: number, mtime: number }
  | { t: 'symlink', path: string, target: string, mtime: number }
  | { t: 'delete', path: string }
  | { t: 'move', from: string, to: string }
  | { t: 'attrs', path: string, mode: number, mtime: number }
  /** `have`: the server holds this content somewhere; otherwise upload, with `basis` = the server's old version at this path, if any. */
  | { t: 'file', path: string, entry: FileEntry, have: boolean, basis: FileEntry | undefined }

/** Paths of a manifest within any of `scope` ('' = everything). */
function pathsInScope (m: Manifest, scope: readonly string[]): string[] {
  if (scope.includes('')) return [...m.paths()]
  const out: string[] = []
  for (const dir of scope) out.push(...m.subtree(dir))
  return out
}

/** Entries of a manifest within any of `scope`. */
function * entriesInScope (m: Manifest, scope: readonly string[]): Iterable<[string, Entry]> {
  if (scope.includes('')) {
    yield * m.entries()
    return
  }
  for (const dir of scope) for (const p of m.subtree(dir)) yield [p, m.get(p) as Entry]
}

/** A digest of a folder's subtree: relative paths and entries, folder mtimes left out. */
function subtreeSignature (m: Manifest, dir: string): string {
  const h = createHash('sha256')
  const paths = m.subtree(dir).sort()
  for (const p of paths) {
    if (p === dir) continue
    const e = m.get(p) as Entry
    const rel = p.slice(dir.length)
    if (e.kind === 'file') h.update(`${rel}\0f${e.mode}\0${e.size}\0${e.mtime}\0`).update(e.hash)
    else if (e.kind === 'dir') h.update(`${rel}\0d${e.mode}\0`)
    else h.update(`${rel}\0l${e.target}\0`)
    h.update('\n')
  }
  return `${paths.length}:${h.digest('hex')}`
}

/** Topmost paths of a set: those with no ancestor in the set. */
function topmost (paths: Iterable<string>, set: ReadonlySet<string>): string[] {
  const out: string[] = []
  for (const p of paths) {
    let parent = parentOf(p)
    let covered = false
    while (parent !== '') {
      if (set.has(parent)) { covered = true; break }
      parent = parentOf(parent)
    }
    if (!covered) out.push(p)
  }
  return out
}

/**
 * `ignored`: paths the local side leaves out on purpose (ignore rules); the server's copies of
 * them are left alone rather than deleted. `handled`: local paths already sent in this pass (a
 * first sync's stream, see first-sync.ts), left alone even where the model lacks them (refused
 * meanwhile: the uploader took them out of it so that the next sync tries them again).
 * `deferred`: gone paths whose deletion waits (watch mode's held paths): sources of moves like
 * any gone path, but not deleted by this plan.
 */
export function plan (local: Manifest, remote: Manifest, scope: readonly string[] = [''], ignored: (path: string, isDir: boolean) => boolean = () => false, handled: ReadonlySet<string> = new Set(), deferred: (path: string) => boolean = () => false): PlannedOp[] {
  const ops: PlannedOp[] = []
  const localPaths = new Set(pathsInScope(local, scope))
  const gone = new Set<string>()
  for (const [p, r] of entriesInScope(remote, scope)) {
    const l = local.get(p)
    if (l === undefined && ignored(p, r.kind === 'dir')) continue
    if (l === undefined || l.kind !== r.kind) gone.add(p)
  }

  // 1. Whole folders that moved.
  const goneDirs = topmost([...gone].filter((p) => remote.get(p)?.kind === 'dir'), gone)
  if (goneDirs.length > 0) {
    const bySignature = new Map<string, string>()
    for (const d of goneDirs) bySignature.set(subtreeSignature(remote, d), d)
    const newDirs = [...localPaths].filter((p) => local.get(p)?.kind === 'dir' && remote.get(p) === undefined).sort()
    const moved: string[] = []
    for (const to of newDirs) {
      if (moved.some((m) => isWithin(to, m))) continue
      const sig = subtreeSignature(local, to)
      const from = bySignature.get(sig)
      if (from === undefined || sig.startsWith('1:')) continue // an empty folder is cheaper to just create
      bySignature.delete(sig)
      ops.push({ t: 'move', from, to })
      remote.moveTree(from, to)
      for (const p of [...gone]) if (isWithin(p, from)) gone.delete(p)
      moved.push(to)
    }
  }

  // Content that leaves its path in this plan, by hash: a new file with it is a move, not a copy.
  const leaving = new Map<string, string[]>()
  for (const p of gone) {
    const e = remote.get(p)
    if (e?.kind !== 'file') continue
    const key = e.hash.toString('hex')
    const list = leaving.get(key)
    if (list === undefined) leaving.set(key, [p])
    else list.push(p)
  }

  // 2. Creates and updates, parents before children. What the server holds as it is here needs
  // nothing, and nothing below changes it (operations touch their own path, what was inside a
  // folder whose kind changed, and paths that are gone): most of a big tree, left out before
  // sorting (100k unchanged paths: ~0.1 s of sort and lookups).
  const todo: string[] = []
  for (const p of localPaths) {
    if (handled.has(p)) continue
    const r = remote.get(p)
    if (r === undefined || !identical(r, local.get(p) as Entry)) todo.push(p)
  }
  for (const p of todo.sort()) {
    const l = local.get(p) as Entry
    let r = remote.get(p)
    if (r !== undefined && r.kind !== l.kind) {
      ops.push({ t: 'delete', path: p })
      remote.deleteTree(p)
      // What was inside goes with it: no longer there to move from (a folder replaced by a file
      // that was in it is an upload, not a move from a path just deleted).
      for (const q of gone) if (isWithin(q, p)) gone.delete(q)
      r = undefined
    }
    switch (l.kind) {
      case 'dir':
        if (r === undefined) ops.push({ t: 'mkdir', path: p, mode: l.mode, mtime: l.mtime })
        else if (r.kind === 'dir' && (r.mode !== l.mode || r.mtime !== l.mtime)) ops.push({ t: 'attrs', path: p, mode: l.mode, mtime: l.mtime })
        break
      case 'link':
        if (r === undefined || (r.kind === 'link' && r.target !== l.target)) ops.push({ t: 'symlink', path: p, target: l.target, mtime: l.mtime })
        else if (r.mtime !== l.mtime) ops.push({ t: 'attrs', path: p, mode: 0, mtime: l.mtime })
        break
      case 'file': {
        const old = r?.kind === 'file' ? r : undefined
        if (isHashPending(l)) {
          // Changed in place, not hashed yet (see LocalTree's ScanOptions): nothing to compare or
          // deduplicate by, so an upload against the old version. What the server will hold is
          // unknown until the upload hashes it and tells the model (see Uploader).
          ops.push({ t: 'file', path: p, entry: l, have: false, basis: old })
          remote.delete(p)
          continue
        }
        if (old !== undefined && old.hash.equals(l.hash)) {
          if (old.mode !== l.mode || old.mtime !== l.mtime) ops.push({ t: 'attrs', path: p, mode: l.mode, mtime: l.mtime })
          break
        }
        const from = old === undefined ? leaving.get(l.hash.toString('hex'))?.find((q) => gone.has(q)) : undefined
        if (from !== undefined) {
          ops.push({ t: 'move', from, to: p })
          gone.delete(from)
          remote.moveTree(from, p)
          if (remote.get(p)?.kind === 'file') {
            const moved = remote.get(p) as FileEntry
            if (moved.mode !== l.mode || moved.mtime !== l.mtime) ops.push({ t: 'attrs', path: p, mode: l.mode, mtime: l.mtime })
          }
          break
        }
        ops.push({ t: 'file', path: p, entry: l, have: remote.hasContent(l.hash), basis: old })
        break
      }
    }
    // Most entries of a big tree are unchanged: setting them anyway cost ~3 µs each and made
    // the model look changed (saved again) after a sync that did nothing.
    r = remote.get(p)
    if (r === undefined || !identical(r, l)) remote.set(p, l)
  }

  // 3. Deletes, topmost only: removing a folder removes what is inside.
  for (const p of topmost([...gone].sort(), gone)) {
    if (!remote.has(p) || deferred(p)) continue
    ops.push({ t: 'delete', path: p })
    remote.deleteTree(p)
  }
  return ops
}

/** Entries equal in every field (folder and link mtimes too, which the digest leaves out). */
function identical (a: Entry, b: Entry): boolean {
  if (a.kind === 'file' && b.kind === 'file') return a.size === b.size && a.mtime === b.mtime && a.mode === b.mode && a.hash.equals(b.hash)
  if (a.kind === 'dir' && b.kind === 'dir') return a.mode === b.mode && a.mtime === b.mtime
  if (a.kind === 'link' && b.kind === 'link') return a.target === b.target && a.mtime === b.mtime
  return false
}
