/**
 * Random changes to a real folder, as a busy user or tool makes them: creates, writes, appends,
 * truncations, mode changes, renames of files and folders (some away and straight back), deletes
 * of files and whole folders, symlinks. For watch-mode tests and the bench's churn run: afterwards
 * the destination must match the source exactly. Seeded choices; the timing is the caller's.
 */
import { appendFileSync, chmodSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Prng } from './prng.js'

/** Every path below `root` (depth first), with whether it is a real folder or a regular file. */
function entries (root: string, rel = '', out: Array<{ path: string, dir: boolean, file: boolean }> = []): typeof out {
  for (const name of readdirSync(join(root, rel))) {
    const path = rel === '' ? name : `${rel}/${name}`
    let st
    try { st = lstatSync(join(root, path)) } catch { continue }
    out.push({ path, dir: st.isDirectory(), file: st.isFile() })
    if (st.isDirectory()) entries(root, path, out)
  }
  return out
}

/**
 * One random change below `root`, named after `n` where it creates something. Errors (a path
 * gone meanwhile) are part of the game and ignored. Files are never written through a symlink.
 */
export function churnStep (root: string, r: Prng, n: number): void {
  const all = entries(root)
  const dirs = ['', ...all.filter((e) => e.dir).map((e) => e.path)]
  const files = all.filter((e) => e.file).map((e) => e.path)
  const name = `n${n}`
  const at = (p: string): string => join(root, p)
  const inDir = (d: string): string => d === '' ? name : `${d}/${name}`
  const op = r.below(100)
  try {
    if (op < 30) writeFileSync(at(inDir(r.pick(dirs)) + '.txt'), r.bytes(r.below(100_000)))
    else if (op < 40) mkdirSync(at(inDir(r.pick(dirs))))
    else if (op < 50 && files.length > 0) writeFileSync(at(r.pick(files)), r.bytes(r.below(20_000)))
    else if (op < 56 && files.length > 0) appendFileSync(at(r.pick(files)), `more ${n}\n`)
    else if (op < 63 && files.length > 0) rmSync(at(r.pick(files)))
    else if (op < 68 && dirs.length > 1) rmSync(at(r.pick(dirs.slice(1))), { recursive: true })
    else if (op < 80 && all.length > 0) {
      const from = r.pick(all).path
      const to = inDir(r.pick(dirs))
      if (to.startsWith(`${from}/`)) return
      renameSync(at(from), at(to))
      if (r.chance(0.3)) renameSync(at(to), at(from)) // away and straight back
    } else if (op < 85) symlinkSync(r.pick(['target.txt', '../elsewhere', name]), at(inDir(r.pick(dirs)) + '.lnk'))
    else if (op < 92 && files.length > 0) chmodSync(at(r.pick(files)), r.pick([0o600, 0o644, 0o755]))
    else if (files.length > 0) truncateSync(at(r.pick(files)), r.below(1000))
  } catch {}
}
