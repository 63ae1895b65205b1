/**
 * An interrupted large upload resumes from what already arrived: after a cut connection, and
 * after the server itself was killed -9 (its temp file is filed as a partial upload at start).
 * A partial that no longer matches the client's file is detected by its prefix hash and the
 * file is sent whole; the destination is exact in every case.
 */
import t from 'tap'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { diffTrees, pushOnce, seededBytes, startServer, tempDir } from '../helpers/fsyncd.js'
import { CuttingProxy, sha256, sleep, spawnPush, tempFiles } from '../helpers/faults.js'

const BIG = 48 * 1024 * 1024
/** Cut the first upload after this many bytes reached the server. */
const CUT_AT = 20 * 1024 * 1024

t.setTimeout(240_000)

function partials (dest: string): string[] {
  try { return readdirSync(join(dest, '.fsyncd', 'partial')) } catch { return [] }
}

async function until (what: string, fn: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

function bigSource (size = BIG): { src: string, name: string } {
  const src = tempDir()
  const big = seededBytes(77, size)
  writeFileSync(join(src, 'big.bin'), big)
  writeFileSync(join(src, 'note.txt'), 'a small file beside it\n')
  return { src, name: `${sha256(big)}-${size}` }
}

/** Pushes through a proxy that cuts after CUT_AT bytes; resolves once the server kept the partial. */
async function cutUpload (src: string, dest: string, port: number): Promise<number> {
  const proxy = new CuttingProxy(port)
  proxy.limit = CUT_AT
  await proxy.listen()
  try {
    const r = await pushOnce(src, proxy.port, tempDir(), {}, ['--log-level', 'error'])
    if (r.code === 0) throw new Error('the cut push succeeded')
  } finally {
    await proxy.close()
  }
  await until('the partial upload', () => partials(dest).length === 1 && tempFiles(dest).length === 0)
  return statSync(join(dest, '.fsyncd', 'partial', partials(dest)[0] as string)).size
}

t.test('a connection cut mid-upload: the next push sends only the rest', async (t) => {
  const { src, name } = bigSource()
  const dest = tempDir()
  const server = await startServer(dest, { args: ['--log-level', 'warn'] })
  t.teardown(() => server.stop())
  const kept = await cutUpload(src, dest, server.port)
  t.same(partials(dest), [name], 'kept under the content it was becoming')
  t.ok(kept > CUT_AT / 2 && kept <= CUT_AT, `it holds most of what was sent before the cut (${(kept / 2 ** 20).toFixed(1)} MiB)`)

  const r = await pushOnce(src, server.port, tempDir())
  t.equal(r.code, 0, r.stderr)
  t.same(diffTrees(src, dest), [], 'exact')
  const sent = Number(r.summary?.wireBytesOut)
  t.ok(sent <= BIG - kept + 512 * 1024, `sent ${(sent / 2 ** 20).toFixed(1)} MiB of ${BIG / 2 ** 20} MiB after ${(kept / 2 ** 20).toFixed(1)} MiB were kept`)
  t.same(partials(dest), [], 'the partial was used up')
})

t.test('a partial that differs from the file is refused by its prefix hash; the file is sent whole', async (t) => {
  // Bigger than the others: what the sockets and the server's read-ahead hold goes out before
  // the refusal arrives (up to ~44 MiB here: loopback TCP buffers autotune to 32 MiB + 4 MiB,
  // plus 8 MiB of frames), and must stay small beside what follows.
  const size = 3 * BIG
  const { src, name } = bigSource(size)
  const dest = tempDir()
  const server = await startServer(dest, { args: ['--log-level', 'warn'] })
  t.teardown(() => server.stop())
  await cutUpload(src, dest, server.port)
  // One flipped byte in what the server kept (a disk error, a crash that lost a page).
  const path = join(dest, '.fsyncd', 'partial', name)
  const bytes = readFileSync(path)
  bytes[1000] = (bytes[1000] as number) ^ 0xff
  writeFileSync(path, bytes)

  const r = await pushOnce(src, server.port, tempDir())
  t.equal(r.code, 0, r.stderr)
  t.same(diffTrees(src, dest), [], 'exact: the bad prefix never reached the final name')
  const sent = Number(r.summary?.wireBytesOut)
  t.ok(sent > size * 0.95, `sent whole (${(sent / 2 ** 20).toFixed(1)} MiB)`)
  // Without the stop, the refused stream would add the whole rest: (size - CUT_AT) more.
  t.ok(sent < size + (size - CUT_AT) / 2, 'and the refused stream stopped at the nack, not at its end')
  t.same(partials(dest), [])
})

t.test('the server killed -9 mid-upload: restarted, it resumes from its temp file', async (t) => {
  const { src, name } = bigSource()
  const dest = tempDir()
  let server = await startServer(dest, { args: ['--log-level', 'warn'] })
  const first = spawnPush(src, server.port, tempDir(), 60_000)
  t.teardown(() => { if (first.proc.proc.exitCode === null) first.proc.proc.kill('SIGKILL') })
  await until('20 MiB in the temp folder', () => tempFiles(dest).some((f) => {
    try { return statSync(join(dest, '.fsyncd', 'tmp', f)).size >= CUT_AT } catch { return false }
  }), 30_000)
  server.proc.kill('SIGKILL')
  await server.exited
  first.proc.proc.kill('SIGKILL')
  await first.done

  server = await startServer(dest, { args: ['--log-level', 'warn'] })
  t.teardown(() => server.stop())
  t.same(tempFiles(dest), [], 'the temp folder was swept at start')
  t.same(partials(dest), [name], 'and the interrupted upload filed as a partial')
  const kept = statSync(join(dest, '.fsyncd', 'partial', name)).size
  t.ok(kept >= CUT_AT, `holding ${(kept / 2 ** 20).toFixed(1)} MiB`)

  const r = await pushOnce(src, server.port, tempDir())
  t.equal(r.code, 0, r.stderr)
  t.same(diffTrees(src, dest), [], 'exact')
  const sent = Number(r.summary?.wireBytesOut)
  t.ok(sent <= BIG - kept + 512 * 1024, `sent ${(sent / 2 ** 20).toFixed(1)} MiB after ${(kept / 2 ** 20).toFixed(1)} MiB were kept`)
})
