/**
 * kill -9 of the client in the middle of uploading a large file: the destination keeps the old
 * version at the final name (never a partial file), the server files what arrived as a partial
 * upload (out of its temp folder), and a new `push --once` with the same state folder resumes
 * from it and converges.
 */
import t, { type Test } from 'tap'
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { diffTrees, type Proc, run, seededBytes, startServer, tempDir } from '../helpers/fsyncd.js'
import { allowedVersions, checkOnce, fileHashes, observe, pushBounded, sha256, sleep, tempFiles } from '../helpers/faults.js'

const BIG = 200 * 1024 * 1024
/** Kill once the server has this much of the big file in its temp folder. */
const KILL_AT = 64 * 1024 * 1024

function largestTemp (dest: string): number {
  let max = 0
  for (const f of tempFiles(dest)) {
    try { max = Math.max(max, statSync(join(dest, '.fsyncd', 'tmp', f)).size) } catch {}
  }
  return max
}

/**
 * Starts `push --once` and kills it -9 once the server's temp folder holds `killAt` bytes of a
 * file (checking that it was still running then).
 */
async function pushUntil (t: Test, src: string, port: number, state: string, dest: string, killAt: number): Promise<{ client: Proc, arrived: number }> {
  const client = run(['push', src, `127.0.0.1:${port}`, '--once', '--json', '--state-dir', state, '--log-level', 'warn'])
  t.teardown(() => { if (client.proc.exitCode === null) client.proc.kill('SIGKILL') })
  let exitedEarly = false
  void client.exited.then(() => { exitedEarly = true })
  const deadline = Date.now() + 60_000
  let arrived = 0
  while (!exitedEarly && Date.now() < deadline && (arrived = largestTemp(dest)) < killAt) await sleep(1)
  t.notOk(exitedEarly, `the client was still uploading when killed (${(arrived / 2 ** 20).toFixed(1)} MiB had arrived; ${client.stderr().slice(-300)})`)
  client.proc.kill('SIGKILL')
  return { client, arrived }
}

// ~10 s idle; allow for a busy machine (every push inside is bounded on its own).
t.setTimeout(240_000)

t.test('client killed -9 mid-upload of a 200 MB file', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  const state = tempDir()
  mkdirSync(join(src, 'small'))
  for (let i = 0; i < 5; i++) writeFileSync(join(src, 'small', `s${i}.txt`), `small file ${i}\n`.repeat(50 * (i + 1)))
  const big = seededBytes(42, BIG)
  writeFileSync(join(src, 'big.bin'), big)
  const oldBig = seededBytes(41, 1_000_000)
  writeFileSync(join(dest, 'big.bin'), oldBig)
  const allowed = allowedVersions(fileHashes(dest), fileHashes(src))
  const bigHash = sha256(big)
  const oldHash = sha256(oldBig)

  // 400 MB of temp folders: removed at the end, pass or fail (after the server is stopped).
  t.teardown(() => {
    rmSync(src, { recursive: true, force: true })
    rmSync(dest, { recursive: true, force: true })
  })
  const obs = observe(dest, allowed)
  let stopped = false
  t.teardown(async () => { if (!stopped) await obs.stop() })
  const server = await startServer(dest, { args: ['--log-level', 'warn'] })
  t.teardown(() => server.stop())

  const { client, arrived } = await pushUntil(t, src, server.port, state, dest, KILL_AT)
  t.ok(arrived >= KILL_AT && arrived < BIG, `killed with ${(arrived / 2 ** 20).toFixed(1)} MiB of ${BIG / 2 ** 20} MiB in the server's temp folder`)
  await client.exited
  t.equal(client.proc.signalCode, 'SIGKILL', 'the client died by SIGKILL')

  const atKill = await checkOnce(dest, allowed)
  t.same(atKill.violations, [], 'right after the kill every file is its old or its new version')
  t.equal(fileHashes(dest).get('big.bin'), oldHash, 'the final name still holds the old version')

  // The server notices the dead peer and files what arrived as a partial upload.
  const partialDir = join(dest, '.fsyncd', 'partial')
  const partials = (): string[] => { try { return readdirSync(partialDir) } catch { return [] } }
  const swept = Date.now() + 5000
  while ((tempFiles(dest).length > 0 || partials().length === 0) && Date.now() < swept) await sleep(20)
  t.same(tempFiles(dest), [], 'nothing left in the temp folder')
  t.same(partials(), [`${bigHash}-${BIG}`], 'the partial upload is kept under the content it was becoming')
  const kept = statSync(join(partialDir, `${bigHash}-${BIG}`)).size
  t.ok(kept >= arrived, `it holds what had arrived (${(kept / 2 ** 20).toFixed(1)} MiB)`)
  t.equal(server.proc.exitCode, null, 'the server is still running')

  const r = await pushBounded(src, server.port, state, 90_000)
  t.equal(r.code, 0, `push --once again with the same state folder succeeds: ${r.stderr.slice(-500)}`)
  t.same(diffTrees(src, dest), [], 'the destination converged exactly')
  t.equal(fileHashes(dest).get('big.bin'), bigHash)
  t.same(tempFiles(dest), [], 'no temp file left')
  t.same(partials(), [], 'the partial upload was used up')

  // "An interrupted large upload resumes from what already arrived and verified."
  const sent = Number(r.summary?.wireBytesOut ?? NaN)
  t.ok(sent <= BIG - kept + 1024 * 1024, `the second push resumes instead of resending everything: it sent ${(sent / 2 ** 20).toFixed(1)} MiB of ${BIG / 2 ** 20} MiB after ${(kept / 2 ** 20).toFixed(1)} MiB had been kept`)

  stopped = true
  const report = await obs.stop()
  t.same(report.violations, [], `the observer never saw a partial file at a final name (${report.scans} passes, ${report.reads} files read)`)
  t.ok(report.scans >= 3, `the observer kept reading throughout (${report.scans} passes)`)
})

t.test('client killed -9 mid-upload of a large file changed in place (hashed as it is sent)', async (t) => {
  const SIZE = 96 * 1024 * 1024
  const src = tempDir()
  const dest = tempDir()
  const state = tempDir()
  const first = seededBytes(51, SIZE)
  writeFileSync(join(src, 'big.bin'), first)
  t.teardown(() => {
    rmSync(src, { recursive: true, force: true })
    rmSync(dest, { recursive: true, force: true })
  })
  const server = await startServer(dest, { args: ['--log-level', 'warn'] })
  t.teardown(() => server.stop())
  t.equal((await pushBounded(src, server.port, state, 90_000)).code, 0, 'first sync')

  // New content, same size: the scan leaves its hash to the upload, and no block matches.
  const second = seededBytes(52, SIZE)
  writeFileSync(join(src, 'big.bin'), second)
  const { client } = await pushUntil(t, src, server.port, state, dest, SIZE / 4)
  await client.exited
  t.equal(fileHashes(dest).get('big.bin'), sha256(first), 'the final name still holds the old version')

  // Nothing names that content yet: what arrived is discarded, not kept to resume.
  const swept = Date.now() + 5000
  while (tempFiles(dest).length > 0 && Date.now() < swept) await sleep(20)
  t.same(tempFiles(dest), [], 'nothing left in the temp folder')
  let partials: string[] = []
  try { partials = readdirSync(join(dest, '.fsyncd', 'partial')) } catch {}
  t.same(partials, [], 'and no partial upload kept')

  const r = await pushBounded(src, server.port, state, 90_000)
  t.equal(r.code, 0, `push --once again converges: ${r.stderr.slice(-500)}`)
  t.same(diffTrees(src, dest), [])
  t.equal(fileHashes(dest).get('big.bin'), sha256(second))
})
