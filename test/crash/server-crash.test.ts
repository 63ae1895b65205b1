/**
 * kill -9 of the server at each named point of committing a batch (FSYNCD_CRASH_POINT, see
 * packages/server/src/store.ts): the client fails (never hangs), a reader of the destination
 * never sees a file that is neither its old nor its new content, and a server restarted on the
 * same destination sweeps the temp files the crash left and converges on the next push.
 */
import t from 'tap'
import { closeSync, ftruncateSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { diffTrees, seededBytes, startServer, tempDir } from '../helpers/fsyncd.js'
import { allowedVersions, checkOnce, fileHashes, observe, Prng, pushBounded, sha256, sleep, spawnPush, tempFiles } from '../helpers/faults.js'

const POINTS = ['after-temp-write', 'after-rename', 'before-dir-fsync'] as const

function writeTree (root: string, files: Map<string, Buffer>): void {
  for (const [p, data] of files) {
    mkdirSync(dirname(join(root, p)), { recursive: true })
    writeFileSync(join(root, p), data)
  }
}

/** The destination before the push, and the source pushed over it (~6 MB of new content). */
function trees (seed: number): { before: Map<string, Buffer>, after: Map<string, Buffer> } {
  const rnd = new Prng(seed)
  const before = new Map<string, Buffer>()
  for (let i = 0; i < 8; i++) before.set(`keep/k${i}.txt`, Buffer.from(`keep ${i} `.repeat(rnd.int(20, 300))))
  before.set('deep/a/b/c.txt', Buffer.from('deep and unchanged\n'))
  const modSizes = [10, 3000, 40_000, 70_000, 300_000, 700_000, 1_000_000, 1_500_000]
  modSizes.forEach((size, i) => before.set(`mod/m${i}.bin`, seededBytes(seed * 100 + i, size)))
  before.set('gone.bin', seededBytes(seed * 100 + 99, 200_000))

  const after = new Map(before)
  after.delete('gone.bin')
  modSizes.forEach((size, i) => after.set(`mod/m${i}.bin`, seededBytes(seed * 1000 + i, size + i * 7)))
  const newSizes = [0, 1, 500, 5000, 50_000, 65_536, 65_537, 200_000, 600_000, 1_200_000]
  newSizes.forEach((size, i) => after.set(`new/n${i}.bin`, seededBytes(seed * 10_000 + i, size)))
  after.set('new/sub/x.txt', Buffer.from('a new folder with a file\n'))
  return { before, after }
}

// ~30 s idle; allow for a busy machine (every push inside is bounded on its own).
t.setTimeout(240_000)

t.test('the observer catches a file rewritten in place (control: it is able to fail)', async (t) => {
  const dest = tempDir()
  const oldData = seededBytes(1, 2_000_000)
  const newData = seededBytes(2, 2_000_000)
  writeFileSync(join(dest, 'f.bin'), oldData)
  const obs = observe(dest, new Map([['f.bin', [sha256(oldData), sha256(newData)]]]))
  // Truncate and rewrite at the final name, in pieces: what an atomic writer never does.
  for (let round = 0; round < 20; round++) {
    const fd = openSync(join(dest, 'f.bin'), 'r+')
    ftruncateSync(fd, 0)
    const data = round % 2 === 0 ? newData : oldData
    for (let off = 0; off < data.length; off += 100_000) {
      writeSync(fd, data, off, 100_000, off)
      await sleep(1)
    }
    closeSync(fd)
  }
  const report = await obs.stop()
  t.ok(report.violations.length > 0, `partial files seen: ${report.violations.length} in ${report.reads} reads`)
})

for (const point of POINTS) {
  t.test(`server killed -9 at ${point}`, async (t) => {
    const { before, after } = trees(POINTS.indexOf(point) + 1)
    const dest = tempDir()
    const src = tempDir()
    const state = tempDir()
    writeTree(dest, before)
    writeTree(src, after)
    const oldHashes = fileHashes(dest)
    const newHashes = fileHashes(src)
    const allowed = allowedVersions(oldHashes, newHashes)
    const changed = [...allowed.keys()].filter((p) => oldHashes.get(p) !== newHashes.get(p))
    const obs = observe(dest, allowed)
    let stopped = false
    t.teardown(async () => { if (!stopped) await obs.stop() })

    // Twice where a crash makes progress: the second one hits a destination the first left half
    // done (after-temp-write never gets past its first batch: once is enough).
    for (let cycle = 1; cycle <= (point === 'after-temp-write' ? 1 : 2); cycle++) {
      const crashing = await startServer(dest, { env: { FSYNCD_CRASH_POINT: point }, args: ['--log-level', 'warn'] })
      t.teardown(() => crashing.stop())
      if (cycle > 1) t.same(tempFiles(dest), [], 'the restarted server swept the temp files before listening')
      const r = await pushBounded(src, crashing.port, state, 30_000)
      t.notOk(r.hung, `push --once ends on its own when the server dies (took ${r.ms} ms)`)
      t.not(r.code, 0, 'push --once fails')
      t.equal(r.code, 3, `exit code 3: "the connection was lost" (README); got ${String(r.code)}: ${r.stderr.slice(-300)}`)
      const exit = await Promise.race([crashing.exited, sleep(10_000).then(() => 'still running')])
      t.equal(exit, null, 'the server exited')
      t.equal(crashing.proc.signalCode, 'SIGKILL', `the server killed itself at ${point}`)

      const leftover = tempFiles(dest)
      if (point === 'after-temp-write') t.ok(leftover.length > 0, `the crash left temp files behind (${leftover.length})`)
      const atCrash = await checkOnce(dest, allowed)
      t.same(atCrash.violations, [], 'right after the crash every file is its old or its new version')
      const now = fileHashes(dest)
      const done = changed.filter((p) => now.get(p) === newHashes.get(p)).length
      t.comment(`${point}, crash ${cycle}: ${leftover.length} temp files left; ${done} of ${changed.length} changed paths already at their new state`)
    }

    const server = await startServer(dest, { args: ['--log-level', 'warn'] })
    t.teardown(() => server.stop())
    t.same(tempFiles(dest), [], 'the restarted server swept the temp files before listening')
    const r2 = await pushBounded(src, server.port, state, 30_000)
    t.equal(r2.code, 0, `the push after the restart succeeds: ${r2.stderr.slice(-500)}`)
    t.same(diffTrees(src, dest), [], 'the destination converged exactly')
    t.same(tempFiles(dest), [], 'no temp file left after the push')

    stopped = true
    const report = await obs.stop()
    t.same(report.violations, [], `the observer never saw a partial or mixed file (${report.scans} passes, ${report.reads} files read)`)
    t.ok(report.scans >= 5, `the observer kept reading throughout (${report.scans} passes)`)
  })
}

t.test('server killed -9 at seeded random moments of a push', async (t) => {
  const rnd = new Prng(0xdead)
  const src = tempDir()
  const dest = tempDir()
  const state = tempDir()
  let serial = 0
  const write = (p: string, size: number): void => {
    mkdirSync(dirname(join(src, p)), { recursive: true })
    writeFileSync(join(src, p), seededBytes(0xdead + ++serial, size))
  }
  for (let d = 0; d < 6; d++) for (let i = 0; i < 40; i++) write(`dir${d}/f${i}.txt`, rnd.int(100, 4000))
  for (let i = 0; i < 3; i++) write(`big${i}.bin`, rnd.int(300_000, 1_200_000))
  const server0 = await startServer(dest, { args: ['--log-level', 'warn'] })
  const r0 = await pushBounded(src, server0.port, state, 30_000)
  await server0.stop()
  t.equal(r0.code, 0, `initial sync: ${r0.stderr.slice(-300)}`)

  for (let round = 1; round <= 3; round++) {
    // Rewrites, new files, deletes, a renamed folder (a server-side move), a rewritten large file.
    const dirs = readdirSync(src).filter((n) => n.startsWith('dir')).sort()
    for (let i = 0; i < 40; i++) write(`${rnd.pick(dirs)}/f${rnd.int(0, 40)}.txt`, rnd.int(100, 4000))
    for (let i = 0; i < 20; i++) write(`${rnd.pick(dirs)}/new${round}-${i}.txt`, rnd.int(100, 4000))
    for (let i = 0; i < 10; i++) rmSync(join(src, rnd.pick(dirs), `f${rnd.int(0, 40)}.txt`), { force: true })
    const moved = rnd.pick(dirs)
    renameSync(join(src, moved), join(src, `${moved.split('-')[0] as string}-r${round}`))
    write(`big${rnd.int(0, 3)}.bin`, rnd.int(300_000, 1_200_000))

    const allowed = allowedVersions(fileHashes(dest), fileHashes(src))
    const obs = observe(dest, allowed)
    const server = await startServer(dest, { args: ['--log-level', 'warn'] })
    const push = spawnPush(src, server.port, state, 30_000)
    // Kill a seeded while after the first temp file shows up (the server is committing).
    let pushEnded = false
    void push.done.then(() => { pushEnded = true })
    const deadline = Date.now() + 10_000
    while (!pushEnded && tempFiles(dest).length === 0 && Date.now() < deadline) await sleep(1)
    const delay = rnd.int(0, 150)
    await sleep(delay)
    server.proc.kill('SIGKILL')
    await server.exited
    const r = await push.done
    t.notOk(r.hung, `round ${round}: killed ${delay} ms into the commit; push --once ended by itself (exit ${String(r.code)}, ${r.ms} ms)`)
    t.ok(r.code === 0 || r.code === 3, `round ${round}: exit 0 (it had finished) or 3 (the connection was lost), got ${String(r.code)}`)
    const atCrash = await checkOnce(dest, allowed)
    t.same(atCrash.violations, [], `round ${round}: right after the kill every file is its old or its new version`)
    // Exit 0 means every change was acknowledged, hence applied: the kill must not undo any.
    if (r.code === 0) t.same(diffTrees(src, dest), [], `round ${round}: the push had finished, so the destination already equals the source`)

    const again = await startServer(dest, { args: ['--log-level', 'warn'] })
    t.same(tempFiles(dest), [], `round ${round}: temp files swept at start`)
    const r2 = await pushBounded(src, again.port, state, 30_000)
    t.equal(r2.code, 0, `round ${round}: the push after the restart succeeds: ${r2.stderr.slice(-300)}`)
    t.same(diffTrees(src, dest), [], `round ${round}: converged exactly`)
    await again.stop()
    const report = await obs.stop()
    t.same(report.violations, [], `round ${round}: the observer never saw a partial or mixed file (${report.scans} passes)`)
  }
})
