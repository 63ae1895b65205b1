/**
 * A frozen copy of the built product for the run. Others rebuild packages/*\/dist while a long
 * bench runs; a client and server from different builds would measure nothing meaningful. So the
 * bench copies every package's package.json, dist/ and bin/ into its work folder, links @fsyncd/* to
 * the copies and every other dependency to the repository's node_modules, and runs that CLI.
 */
import { execFileSync } from 'node:child_process'
import { cp, mkdir, readdir, readFile, symlink } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { REPO } from './proc.js'

/** The frozen copy: its CLI, the folder holding its packages, and what it was built from. */
export interface Product { bin: string, root: string, commit: string, dirty: string[] }

function git (args: string[]): string {
  try { return execFileSync('git', args, { cwd: REPO, encoding: 'utf8' }).trim() } catch { return '' }
}

export async function freezeProduct (work: string): Promise<Product> {
  const root = join(work, 'product')
  const modules = join(root, 'node_modules')
  await mkdir(join(modules, '@fsyncd'), { recursive: true })
  for (const dir of await readdir(join(REPO, 'packages'))) {
    const from = join(REPO, 'packages', dir)
    if (!existsSync(join(from, 'dist'))) continue
    const to = join(root, 'packages', dir)
    await mkdir(to, { recursive: true })
    await cp(join(from, 'package.json'), join(to, 'package.json'))
    await cp(join(from, 'dist'), join(to, 'dist'), { recursive: true })
    if (existsSync(join(from, 'bin'))) await cp(join(from, 'bin'), join(to, 'bin'), { recursive: true })
    const name = (JSON.parse(await readFile(join(from, 'package.json'), 'utf8')) as { name: string }).name
    await symlink(to, join(modules, ...name.split('/')))
  }
  for (const entry of await readdir(join(REPO, 'node_modules'))) {
    if (entry === '@fsyncd' || entry.startsWith('.')) continue
    await symlink(join(REPO, 'node_modules', entry), join(modules, entry))
  }
  // What users run: the launcher (it sizes the thread pool), which loads the bundle.
  const bin = join(root, 'packages', 'cli', 'bin', 'fsyncd.js')
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build first (npm run build)`)
  return { bin, root, commit: git(['rev-parse', '--short', 'HEAD']), dirty: git(['status', '--porcelain', '--', 'packages', 'protocol']).split('\n').filter((l) => l !== '') }
}
