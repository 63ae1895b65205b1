/**
 * Auth through the real CLI: a shared token proves itself both ways; a wrong or missing token
 * is refused with exit code 4 and a clear message; the destination is untouched.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { diffTrees, pushOnce, run, snapshot, startServer, tempDir } from '../helpers/fsyncd.js'

const TOKEN = 'correct-horse-battery-staple-0123456789'

t.test('token auth', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  writeFileSync(join(src, 'a.txt'), 'secret-ish')
  const tokenFile = join(tempDir(), 'token')
  writeFileSync(tokenFile, TOKEN + '\n')
  const server = await startServer(dest, { args: ['--token-file', tokenFile] })
  t.teardown(() => server.stop())

  const wrong = await pushOnce(src, server.port, tempDir(), { FSYNCD_TOKEN: 'not-the-right-token-at-all' })
  t.equal(wrong.code, 4, 'wrong token: exit 4')
  t.match(wrong.stderr, /could not prove|token differs/, 'says why')
  t.equal(snapshot(dest).size, 0, 'nothing written')

  const none = await pushOnce(src, server.port, tempDir())
  t.equal(none.code, 4, 'no token: exit 4')
  t.match(none.stderr, /requires a token|requires TLS 1.3 keyed by the token/)

  const ok = await pushOnce(src, server.port, tempDir(), { FSYNCD_TOKEN: TOKEN })
  t.equal(ok.code, 0, ok.stderr)
  t.same(diffTrees(src, dest), [])
})

t.test('a client with a token refuses a server without one', async (t) => {
  const dest = tempDir()
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  t.match(server.stderr(), /loopback clients only/, 'the server says it runs without a token')
  const src = tempDir()
  writeFileSync(join(src, 'a.txt'), 'a')
  const r = await pushOnce(src, server.port, tempDir(), { FSYNCD_TOKEN: TOKEN })
  t.equal(r.code, 4)
  t.match(r.stderr, /runs without one|does not speak TLS \(it runs without a token/)
  t.equal(snapshot(dest).size, 0)
})

t.test('usage errors exit 2, an unreachable server exits 3', async (t) => {
  const bad = run(['push', tempDir(), 'no-port-here', '--once'])
  t.equal(await bad.exited, 2, bad.stderr())
  const missing = run(['frobnicate'])
  t.equal(await missing.exited, 2)
  // A port nothing listens on: bind one, close it, use it.
  const { createServer } = await import('node:net')
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  const r = await pushOnce(tempDir(), port, tempDir())
  t.equal(r.code, 3, r.stderr)
  t.match(r.stderr, /ECONNREFUSED/)
})
