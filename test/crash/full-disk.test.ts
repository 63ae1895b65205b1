/**
 * A full disk, for real: the destination on a 4 MiB tmpfs. The client gets a clear NO_SPACE and
 * exit 5, the temp file is removed, the destination keeps its last good state, and once there is
 * room again the next push converges. Skipped, saying why, where this machine cannot mount.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { diffTrees, pushOnce, seededBytes, startServer, tempDir } from '../helpers/fsyncd.js'

function mountTmpfs (dir: string, size: string): string | undefined {
  if (process.getuid?.() !== 0) return 'not root: cannot mount a tmpfs'
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' })
    return undefined
  } catch (err) {
    return `mount failed: ${(err as Error).message.split('\n')[0] ?? ''}`
  }
}

/** A 4 MiB tmpfs to serve into; `cannot` says why there is none. Unmounted by `remove`. */
function smallDisk (): { dest: string, cannot: string | undefined, remove: () => void } {
  const where = tempDir()
  const dest = join(where, 'dest')
  mkdirSync(dest)
  return { dest, cannot: mountTmpfs(dest, '4m'), remove: () => { try { execFileSync('umount', [dest]) } catch {} rmSync(where, { recursive: true, force: true }) } }
}

const disk = smallDisk()
const dest = disk.dest

t.test('a full disk: NO_SPACE, exit 5, last good state kept, then recovery', { skip: disk.cannot ?? false }, async (t) => {
  t.teardown(disk.remove)
  const src = tempDir()
  const state = tempDir()
  writeFileSync(join(src, 'keep.txt'), 'last good state')
  writeFileSync(join(src, 'small.bin'), seededBytes(1, 512 * 1024))
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  let r = await pushOnce(src, server.port, state)
  t.equal(r.code, 0, r.stderr)

  writeFileSync(join(src, 'keep.txt'), 'a newer version that will not fit with the big file')
  writeFileSync(join(src, 'big.bin'), seededBytes(2, 6 * 1024 * 1024)) // incompressible, more than the disk
  r = await pushOnce(src, server.port, state)
  t.equal(r.code, 5, 'exit 5: synced except what did not fit')
  t.match(r.stderr, /NO_SPACE/, 'the client says the server\'s disk is full')
  t.same(readdirSync(join(dest, '.fsyncd', 'tmp')), [], 'the temp file is gone')
  t.same(readdirSync(dest).filter((n) => n === 'big.bin'), [], 'no partial big.bin at its final name')
  t.equal(readFileSync(join(dest, 'small.bin')).length, 512 * 1024, 'what was there is intact')
  r = await pushOnce(src, server.port, state)
  t.equal(r.code, 5, 'nothing changed since, and the next push tries the refused file again (not "in sync")')

  rmSync(join(src, 'big.bin'))
  r = await pushOnce(src, server.port, state)
  t.equal(r.code, 0, `with room again the next push works: ${r.stderr.slice(-300)}`)
  t.same(diffTrees(src, dest), [], 'and converges')
})

const disk2 = smallDisk()

t.test('a first sync that does not fit: each refusal reported once, nothing sent twice', { skip: disk2.cannot ?? false }, async (t) => {
  t.teardown(disk2.remove)
  const dest2 = disk2.dest
  // Into an empty server the scan streams (first-sync.ts): refusals arrive while it still runs.
  const src = tempDir()
  let entries = 0
  for (let d = 0; d < 12; d++) {
    mkdirSync(join(src, `d${d}`))
    writeFileSync(join(src, `d${d}`, 'big.bin'), seededBytes(100 + d, 1024 * 1024))
    for (let i = 0; i < 30; i++) writeFileSync(join(src, `d${d}`, `f${i}.txt`), `file ${d}/${i}\n`.repeat(20))
    entries += 32
  }
  const server = await startServer(dest2)
  t.teardown(() => server.stop())
  const r = await pushOnce(src, server.port, tempDir())
  t.equal(r.code, 5, `exit 5: synced except what did not fit (${r.stderr.slice(-300)})`)
  const failures = (r.summary?.failures ?? []) as Array<{ path: string }>
  const paths = failures.map((f) => f.path)
  t.ok(paths.length > 0, `some files did not fit (${paths.length})`)
  t.equal(new Set(paths).size, paths.length, 'no path reported twice')
  t.ok((r.summary?.ops as number) <= entries, `no op sent twice (${String(r.summary?.ops)} ops for ${entries} entries)`)
})
