/**
 * The correctness check: a destination equals the source when both hold the same paths, every
 * file with the same SHA-256 and mode, every folder with the same mode, every symlink with the
 * same target. mtimes are not compared (the naive uploader does not keep them). Written here on
 * purpose, independent of the product's scanner. `.fsyncd` at the root is the server's own.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { lstat, readdir, readFile, readlink } from 'node:fs/promises'
import { join } from 'node:path'

async function sha256 (path: string, size: number): Promise<string> {
  if (size <= 8 * 1024 * 1024) return createHash('sha256').update(await readFile(path)).digest('hex')
  const h = createHash('sha256')
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) h.update(chunk as Buffer)
  return h.digest('hex')
}

/** path → "file <mode> <sha256>" | "dir <mode>" | "link <target>". */
export async function snapshot (root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(root, rel))).sort()
    for (const name of names) {
      const p = rel === '' ? name : `${rel}/${name}`
      if (p === '.fsyncd') continue
      const abs = join(root, p)
      const st = await lstat(abs)
      if (st.isSymbolicLink()) out.set(p, `link ${await readlink(abs)}`)
      else if (st.isDirectory()) {
        out.set(p, `dir ${(st.mode & 0o7777).toString(8)}`)
        await walk(p)
      } else if (st.isFile()) out.set(p, `file ${(st.mode & 0o7777).toString(8)} ${await sha256(abs, st.size)}`)
      else out.set(p, 'other')
    }
  }
  await walk('')
  return out
}

/** Differences, at most `limit` lines; empty when `dest` equals `src`. */
export async function compareTrees (src: string | Map<string, string>, dest: string, limit = 5): Promise<string[]> {
  const a = typeof src === 'string' ? await snapshot(src) : src
  const b = await snapshot(dest)
  const out: string[] = []
  for (const [p, e] of a) {
    const o = b.get(p)
    if (o === undefined) out.push(`missing ${p}`)
    else if (o !== e) out.push(`differs ${p}: ${e} vs ${o}`)
  }
  for (const p of b.keys()) if (!a.has(p)) out.push(`extra ${p}`)
  return out.length > limit ? [...out.slice(0, limit), `… ${out.length - limit} more`] : out
}
