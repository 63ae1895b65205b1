/**
 * Watch mode and a file that is appended to all the time (a log being written): what crosses
 * the wire is about what was appended, not the file again and again; the server only ever
 * holds versions the file had (it checks each against the hash the client found), and the
 * destination ends equal to the source.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { CountingProxy, diffTrees, run, seededBytes, startServer, tempDir, waitFor } from '../helpers/fsyncd.js'

t.test('a file appended to every 20 ms costs its appended bytes', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  const log = join(src, 'app.log')
  const BASE = 3_000_000
  const APPENDS = 40
  const APPEND = 50_000
  writeFileSync(log, seededBytes(31, BASE)) // incompressible: bytes on the wire are bytes sent
  const server = await startServer(dest)
  const proxy = new CountingProxy(server.port)
  await proxy.listen()
  const client = run(['push', src, `127.0.0.1:${proxy.port}`, '--state-dir', tempDir(), '--json'])
  t.teardown(async () => {
    client.proc.kill('SIGKILL')
    await proxy.close()
    await server.stop()
  })
  await waitFor(() => client.stdout().includes('"synced"') || undefined, 15_000, () => `initial sync: ${client.stderr()}`, client.exited)
  const initial = proxy.total

  // Whatever the server shows meanwhile must be a version the file had: a prefix of the final
  // content, cut at an append boundary.
  const shown = new Set<number>()
  const look = (): void => {
    try {
      const there = readFileSync(join(dest, 'app.log'))
      shown.add(there.length)
      versions.push(there)
    } catch {}
  }
  const versions: Buffer[] = []
  for (let i = 0; i < APPENDS; i++) {
    appendFileSync(log, seededBytes(100 + i, APPEND))
    await new Promise((resolve) => setTimeout(resolve, 20))
    look()
  }
  await waitFor(() => {
    look()
    return diffTrees(src, dest).length === 0 || undefined
  }, 30_000, () => `converged: ${diffTrees(src, dest).join('; ')}\n${client.stderr().slice(-2000)}`)
  const final = readFileSync(log)
  const bad = versions.filter((v) => (v.length - BASE) % APPEND !== 0 || !v.equals(final.subarray(0, v.length))).map((v) => v.length)
  t.same(bad, [], `every version the server showed was one the file had (${shown.size} sizes seen: ${[...shown].sort((a, b) => a - b).join(', ')})`)

  const appended = APPENDS * APPEND
  const sent = proxy.total - initial
  t.ok(initial >= BASE && initial < BASE * 1.05, `the initial sync sent the file once (${initial} bytes)`)
  // Before the uploads kept what they read to the size planned, each attempt on a grown file
  // failed and was sent again whole: 5-14 times the bytes.
  t.ok(sent < appended * 1.5, `${sent} bytes on the wire for ${appended} appended`)
})

// Two rhythms: appends 10 ms apart keep the scan from ever reading the file still (it is skipped,
// and looked at again by the passes); 40 ms apart, the scan hashes it and it grows under its upload.
for (const { every, times } of [{ every: 10, times: 40 }, { every: 40, times: 12 }]) {
  t.test(`push --once while a file grows (every ${every} ms): it ends with the last version, never an older one silently`, async (t) => {
    const src = tempDir()
    const dest = tempDir()
    const log = join(src, 'app.log')
    writeFileSync(log, seededBytes(41, 20_000_000))
    const server = await startServer(dest)
    t.teardown(async () => { await server.stop() })
    // Appends for ~0.4-0.5 s from another process, then stops: the passes --once makes over
    // files that changed while sent (0.25 s, then 0.5 s and 0.75 s later) see it still by then.
    const appender = spawn(process.execPath, ['-e', `
      const fs = require('node:fs'); const fd = fs.openSync(${JSON.stringify(log)}, 'a'); let n = 0
      const tick = () => { fs.writeSync(fd, Buffer.alloc(100000, n % 251)); if (++n < ${times}) setTimeout(tick, ${every}) }; tick()
    `], { stdio: 'ignore' })
    const appended = new Promise((resolve) => appender.once('exit', resolve))
    t.teardown(() => appender.kill('SIGKILL'))
    const client = run(['push', src, `127.0.0.1:${server.port}`, '--once', '--json', '--state-dir', tempDir()])
    const code = await client.exited
    await appended
    const summary = JSON.parse(client.stdout().trim().split('\n').pop() as string) as { failures: Array<{ path: string }> }
    if (code === 0) {
      t.same(diffTrees(src, dest), [], 'exit 0: the server holds the last version')
    } else {
      t.equal(code, 5, 'otherwise a partial sync') // Exit.PARTIAL
      t.same(summary.failures.map((f) => f.path), ['app.log'], 'that names the file')
    }
  })
}
