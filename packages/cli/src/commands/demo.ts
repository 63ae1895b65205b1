/**
 * `fsyncd demo`: a real sync on this machine, end to end, in a temp folder: a server on a free
 * loopback port, the bundled sample folder pushed to it, then a copy and a folder rename pushed
 * (which cost almost nothing on the wire), then both trees compared entry by entry.
 */
import { cp, mkdir, mkdtemp, rename, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { PushClient } from '@fsyncd/client'
import { sameEntry, STATE_DIR } from '@fsyncd/protocol'
import { SyncServer } from '@fsyncd/server'
import { LocalTree } from '@fsyncd/tree'
import { PACKAGE_ROOT } from '../package-root.js'
import { formatSummary } from '../summary.js'

export const SAMPLE_DIR = join(PACKAGE_ROOT, '..', '..', 'examples', 'sample')

export async function demo (log: Logger): Promise<number> {
  const work = await mkdtemp(join(tmpdir(), 'fsyncd-demo-'))
  const src = join(work, 'src')
  const dest = join(work, 'dest')
  await cp(SAMPLE_DIR, src, { recursive: true, verbatimSymlinks: true })
  await mkdir(join(src, 'empty', 'nested'), { recursive: true }) // git keeps no empty folders
  await symlink('docs/README.txt', join(src, 'link-to-readme')).catch(() => {})
  const server = new SyncServer({ dest, host: '127.0.0.1', port: 0, log })
  const { port } = await server.listen()
  const client = (): PushClient => new PushClient({ src, host: '127.0.0.1', port, stateDir: join(work, 'state'), log })
  try {
    process.stdout.write(`fsyncd demo: pushing ${src}\n          to ${dest} through 127.0.0.1:${port}\n\n1. initial sync\n`)
    process.stdout.write(formatSummary(await client().once()))

    process.stdout.write('\n2. copy a file into another folder and rename a folder (nothing to upload)\n')
    await cp(join(src, 'data', 'random.bin'), join(src, 'docs', 'random-copy.bin'))
    await rename(join(src, 'data'), join(src, 'data-renamed'))
    process.stdout.write(formatSummary(await client().once()))

    const problems = await compareTrees(src, dest)
    if (problems.length > 0) {
      process.stdout.write(`\nMISMATCH:\n${problems.join('\n')}\n`)
      return 1
    }
    process.stdout.write(`\ndemo ok: ${dest} is identical to ${src}\n`)
    return 0
  } finally {
    await server.close()
    if (process.env.FSYNCD_DEMO_KEEP === undefined) await rm(work, { recursive: true, force: true })
  }
}

/** Differences between two folders (kinds, content hashes, modes, file mtimes, link targets). */
export async function compareTrees (a: string, b: string): Promise<string[]> {
  const ta = new LocalTree(a, { ignore: (p) => p === STATE_DIR })
  const tb = new LocalTree(b, { ignore: (p) => p === STATE_DIR })
  await ta.scan()
  await tb.scan()
  const problems: string[] = []
  for (const [p, e] of ta.manifest.entries()) {
    const o = tb.manifest.get(p)
    if (o === undefined) problems.push(`missing: ${p}`)
    else if (!sameEntry(e, o)) problems.push(`differs: ${p}`)
  }
  for (const p of tb.manifest.paths()) if (!ta.manifest.has(p)) problems.push(`extra: ${p}`)
  return problems
}
