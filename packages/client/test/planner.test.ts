/**
 * The planner against a model of the server: random server trees, random local changes to them
 * (edits, touches, deletes, moves of files and of whole folders, copies, kind changes, hashes
 * left pending by the scan), a plan, and the plan applied to the model the way the server
 * applies operations. The model must end equal to the local tree, and the planner's own view of
 * the server (`remote`, which it updates) must equal the model.
 */
import { createHash } from 'node:crypto'
import t from 'tap'
import { type Entry, Manifest, isWithin, parentOf, sameEntry } from '@fsyncd/protocol'
import { PENDING_HASH } from '@fsyncd/tree'
import { Prng } from '@fsyncd/testkit'
import { plan, type PlannedOp } from '../src/planner.js'

type FileEntry = Extract<Entry, { kind: 'file' }>

const contents = Array.from({ length: 12 }, (_, i) => createHash('sha256').update(`content ${i}`).digest())
const NAMES = ['a', 'b', 'c', 'd']

function randomTree (r: Prng): Manifest {
  const m = new Manifest()
  const fill = (dir: string, depth: number): void => {
    for (const name of NAMES) {
      if (!r.chance(0.6)) continue
      const p = dir === '' ? name : `${dir}/${name}`
      const kind = depth < 2 && r.chance(0.35) ? 'dir' : r.chance(0.85) ? 'file' : 'link'
      if (kind === 'dir') {
        m.set(p, { kind: 'dir', mode: r.pick([0o755, 0o700]), mtime: r.between(1, 3) })
        fill(p, depth + 1)
      } else if (kind === 'file') {
        m.set(p, { kind: 'file', mode: r.pick([0o644, 0o600]), mtime: r.between(1, 3), size: 10, hash: r.pick(contents) })
      } else {
        m.set(p, { kind: 'link', mtime: r.between(1, 3), target: r.pick(['x', '../y']) })
      }
    }
  }
  fill('', 0)
  return m
}

/** The local tree: the server's, changed. Returns it and the true content of pending files. */
function changed (r: Prng, server: Manifest): { local: Manifest, truth: Map<string, Buffer> } {
  const local = server.clone()
  const truth = new Map<string, Buffer>()
  for (let n = r.between(1, 6); n > 0; n--) {
    const paths = [...local.paths()]
    const p = paths.length > 0 ? r.pick(paths) : undefined
    const e = p === undefined ? undefined : local.get(p)
    switch (r.below(8)) {
      case 0: // edit or touch a file
        if (p !== undefined && e?.kind === 'file') local.set(p, { ...e, hash: r.pick(contents), mtime: e.mtime + 1 })
        break
      case 1: // touched
        if (p !== undefined && e !== undefined) local.set(p, { ...e, mtime: e.mtime + 1 })
        break
      case 2: // delete (a folder with everything in it)
        if (p !== undefined) local.deleteTree(p)
        break
      case 3: { // move a file or a whole folder to a new name
        const to = `${p !== undefined && local.get(parentOf(p))?.kind === 'dir' ? parentOf(p) + '/' : ''}moved${r.below(3)}`
        if (p !== undefined && local.get(to) === undefined && !isWithin(to, p)) local.moveTree(p, to)
        break
      }
      case 4: // a new file, maybe a copy of content the server holds
        local.set(`new${r.below(4)}`, { kind: 'file', mode: 0o644, mtime: 5, size: 10, hash: r.pick(contents) })
        break
      case 5: // chmod
        if (p !== undefined && e !== undefined && e.kind !== 'link') local.set(p, { ...e, mode: e.mode ^ 0o040 })
        break
      case 6: // a file becomes a folder, or the reverse
        if (p !== undefined && e?.kind === 'file') local.set(p, { kind: 'dir', mode: 0o755, mtime: 7 })
        else if (p !== undefined && e?.kind === 'dir') {
          local.deleteTree(p)
          local.set(p, { kind: 'file', mode: 0o644, mtime: 7, size: 10, hash: r.pick(contents) })
        }
        break
      case 7: // a symlink retargeted
        if (p !== undefined && e?.kind === 'link') local.set(p, { ...e, target: 'z', mtime: e.mtime + 1 })
        break
    }
  }
  // Big files changed (or only touched) in place, at a path that held a file before: the scan
  // leaves their hash to the upload.
  for (const [p, e] of [...local.entries()]) {
    if (e.kind !== 'file' || server.get(p)?.kind !== 'file' || !r.chance(0.2)) continue
    const hash = r.chance(0.3) ? e.hash : r.pick(contents)
    local.set(p, { ...e, mtime: e.mtime + 1, hash: PENDING_HASH })
    truth.set(p, hash)
  }
  return { local, truth }
}

/** Applies one operation as the server does; `have` needs the content somewhere on it. */
function apply (server: Manifest, op: PlannedOp, truth: Map<string, Buffer>): string | undefined {
  const parentsOk = (p: string): boolean => parentOf(p) === '' || server.get(parentOf(p))?.kind === 'dir'
  switch (op.t) {
    case 'mkdir':
      if (!parentsOk(op.path)) return `mkdir ${op.path}: no parent`
      server.set(op.path, { kind: 'dir', mode: op.mode, mtime: op.mtime })
      return
    case 'symlink':
      server.set(op.path, { kind: 'link', mtime: op.mtime, target: op.target })
      return
    case 'delete':
      server.deleteTree(op.path)
      return
    case 'move':
      if (!server.has(op.from)) return `move ${op.from}: nothing there`
      server.deleteTree(op.to)
      server.moveTree(op.from, op.to)
      return
    case 'attrs': {
      const e = server.get(op.path)
      if (e === undefined) return `attrs ${op.path}: nothing there`
      server.set(op.path, e.kind === 'link' ? { ...e, mtime: op.mtime } : { ...e, mode: op.mode, mtime: op.mtime })
      return
    }
    case 'file': {
      const hash = op.entry.hash.length === 0 ? truth.get(op.path) as Buffer : op.entry.hash
      if (op.have && !server.hasContent(hash)) return `file ${op.path}: have, but the server holds no such content`
      server.deleteTree(op.path)
      server.set(op.path, { ...op.entry, hash } satisfies FileEntry)
    }
  }
}

function differences (a: Manifest, b: Manifest): string[] {
  const out: string[] = []
  for (const [p, e] of a.entries()) {
    const o = b.get(p)
    if (o === undefined) out.push(`only in the first: ${p}`)
    else if (!sameEntry(e, o) || e.mtime !== o.mtime) out.push(`differs: ${p}`)
  }
  for (const p of b.paths()) if (!a.has(p)) out.push(`only in the second: ${p}`)
  return out
}

t.test('a plan applied to the server makes it the local tree, and the planner knows what it made', async (t) => {
  const r = new Prng(20261124)
  let failures = 0
  let ops = 0
  let moves = 0
  let haves = 0
  for (let round = 0; round < 3000 && failures < 5; round++) {
    const server = randomTree(r)
    const { local, truth } = changed(r, server)
    const remote = server.clone()
    const planned = plan(local, remote)
    ops += planned.length
    const problems: string[] = []
    for (const op of planned) {
      if (op.t === 'move') moves++
      if (op.t === 'file' && op.have) haves++
      const problem = apply(server, op, truth)
      if (problem !== undefined) problems.push(problem)
    }
    // What the uploads of pending files taught the planner's view (the uploader's job).
    for (const [p, hash] of truth) if (local.get(p)?.kind === 'file' && remote.get(p) === undefined) remote.set(p, { ...(local.get(p) as FileEntry), hash })
    const expected = local.clone()
    for (const [p, hash] of truth) if (expected.get(p)?.kind === 'file') expected.set(p, { ...(expected.get(p) as FileEntry), hash })
    problems.push(...differences(expected, server).map((d) => `server vs local: ${d}`))
    problems.push(...differences(remote, server).map((d) => `planner's view vs server: ${d}`))
    if (problems.length > 0) {
      failures++
      t.fail(`round ${round}: ${problems.slice(0, 5).join('; ')}\nplan: ${JSON.stringify(planned.map((o) => ({ ...o, entry: undefined, basis: undefined })))}`)
    }
  }
  t.equal(failures, 0, `3000 rounds, ${ops} operations (${moves} moves, ${haves} copies of held content)`)
  t.ok(moves > 100 && haves > 100, 'the rounds exercised moves and copies')
})

t.test('a plan of nothing changed is empty, and pending hashes are never matched by content', async (t) => {
  const r = new Prng(7)
  for (let round = 0; round < 300; round++) {
    const server = randomTree(r)
    t.same(plan(server.clone(), server.clone()), [], `round ${round}: same trees, no operations`)
  }
  const server = new Manifest()
  server.set('old', { kind: 'file', mode: 0o644, mtime: 1, size: 10, hash: contents[0] as Buffer })
  const local = new Manifest()
  local.set('old', { kind: 'file', mode: 0o644, mtime: 2, size: 10, hash: PENDING_HASH })
  local.set('other', { kind: 'file', mode: 0o644, mtime: 2, size: 10, hash: PENDING_HASH })
  const remote = server.clone()
  const ops = plan(local, remote)
  t.match(ops, [{ t: 'file', path: 'old', have: false, basis: { hash: contents[0] } }, { t: 'file', path: 'other', have: false }], 'uploads, never copies or moves by a pending hash')
  t.equal(remote.get('old'), undefined, 'the view of the server leaves a pending file out until its upload knows its hash')
  t.notOk(remote.hasContent(PENDING_HASH))
})

t.test('a deferred gone path is still where a move starts, and is not deleted while deferred', async (t) => {
  const file = (i: number): FileEntry => ({ kind: 'file', mode: 0o644, mtime: 1, size: 0, hash: contents[i] as Buffer })
  const server = new Manifest()
  server.set('p', { kind: 'dir', mode: 0o755, mtime: 1 })
  server.set('p/x', { kind: 'dir', mode: 0o755, mtime: 1 })
  // Empty files and links: no content to match by, only the folder's signature.
  for (const n of ['e1', 'e2']) server.set(`p/x/${n}`, file(0))
  server.set('p/x/l', { kind: 'link', mtime: 1, target: 'e1' })
  server.set('q', file(1))
  const deferred = (p: string): boolean => isWithin(p, 'p/x') || p === 'q'

  // p/x renamed to p/y; q gone with nothing to claim it.
  const local = server.clone()
  local.moveTree('p/x', 'p/y')
  local.delete('q')
  const remote = server.clone()
  const ops = plan(local, remote, ['p', 'q'], () => false, new Set(), deferred)
  t.same(ops, [{ t: 'move', from: 'p/x', to: 'p/y' }], 'one move from the deferred folder; the deferred q is not deleted')
  t.ok(remote.has('q'), 'the model keeps what was deferred')
  t.same(plan(local, remote.clone(), ['q']), [{ t: 'delete', path: 'q' }], 'not deferred any more: deleted')
})
