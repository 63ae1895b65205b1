/**
 * The CLI's own behaviour: the server's history and `fsyncd log`, -q, --version, exit code 6, the launcher.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BIN, pushOnce, run, seededBytes, startServer, tempDir } from '../helpers/fsyncd.js'

t.test('the server keeps a history; fsyncd log prints it', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  writeFileSync(join(src, 'a.bin'), seededBytes(3, 300_000))
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  const state = tempDir()
  t.equal((await pushOnce(src, server.port, state)).code, 0)
  copyFileSync(join(src, 'a.bin'), join(src, 'b.bin'))
  t.equal((await pushOnce(src, server.port, state)).code, 0)
  await new Promise((resolve) => setTimeout(resolve, 200)) // the history is appended after the acks
  const json = run(['log', dest, '--json'])
  t.equal(await json.exited, 0)
  const records = json.stdout().trim().split('\n').map((l) => JSON.parse(l) as { op: string, path: string, size?: number, wire?: number, saved?: number, client: string })
  const upload = records.find((r) => r.op === 'upload' && r.path === 'a.bin')
  t.ok(upload !== undefined && upload.size === 300_000 && (upload.wire ?? 0) >= 300_000, 'the upload, with its bytes on the wire')
  const copy = records.find((r) => r.op === 'copy' && r.path === 'b.bin')
  t.ok(copy !== undefined && copy.wire === 0 && copy.saved === 300_000, 'the copy cost no data and saved the whole file')
  t.match(copy?.client, /^127\.0\.0\.1:\d+$/, 'who made the change')
  const human = run(['log', dest])
  t.equal(await human.exited, 0)
  t.match(human.stdout(), /copy +b\.bin .*saved 293\.0 KiB/)
})

t.test('-q prints nothing on success; --version; a taken port exits 6; bad options exit 2', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  writeFileSync(join(src, 'x'), 'x')
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  const q = run(['push', src, `127.0.0.1:${server.port}`, '--once', '-q', '--state-dir', tempDir()])
  t.equal(await q.exited, 0)
  t.equal(q.stdout(), '', 'quiet: no summary')
  const v = run(['--version'])
  t.equal(await v.exited, 0)
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname ?? '.', '..', '..', 'packages', 'cli', 'package.json'), 'utf8')) as { version: string }
  t.equal(v.stdout().trim(), pkg.version)
  const missing = run(['push', join(src, 'nope'), `127.0.0.1:${server.port}`, '--state-dir', tempDir()])
  t.equal(await missing.exited, 6, 'watching a source that does not exist: local I/O')
  t.match(missing.stderr(), /does not exist/)
  const taken = run(['serve', tempDir(), '--port', String(server.port)])
  t.equal(await taken.exited, 6, 'the port is in use: local I/O')
  t.match(taken.stderr(), /EADDRINUSE/)
  for (const bad of [['--rescan-interval', '0'], ['--rescan-interval', '3000000'], ['--debounce', '-1'], ['--debounce', 'soon']]) {
    const usage = run(['push', src, `127.0.0.1:${server.port}`, '--state-dir', tempDir(), ...bad])
    t.equal(await usage.exited, 2, `${bad.join(' ')}: a usage error`)
    t.match(usage.stderr(), new RegExp(bad[0] as string))
  }
})

t.test('an option given twice takes its last value; --exclude, each', async (t) => {
  const src = tempDir()
  writeFileSync(join(src, 'keep.txt'), 'x')
  writeFileSync(join(src, 'a.log'), 'x')
  mkdirSync(join(src, 'node_modules'))
  writeFileSync(join(src, 'node_modules', 'x.js'), 'x')
  const dest = tempDir()
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  const p = run(['push', src, `127.0.0.1:${server.port}`, '--once', '--state-dir', tempDir(), '--log-level', 'debug', '--log-level', 'silent', '--exclude', '*.log', '--exclude', 'node_modules'])
  t.equal(await p.exited, 0, p.stderr())
  t.equal(p.stderr(), '', 'silent, not debug (nor an error about two levels)')
  t.same(readdirSync(dest).filter((n) => n !== '.fsyncd').sort(), ['keep.txt'], 'both patterns left their files out')
})

t.test('the launcher gives the server\'s libuv pool 64 threads unless the environment sets the number', async (t) => {
  if (process.platform !== 'linux') return t.skip('counts threads in /proc')
  // Without NODE_OPTIONS, which tap puts back into every child it sees spawned: its loader hooks
  // (coverage) would start the pool before the launcher runs.
  const serve = async (extra: string[], before: string[] = []): Promise<number> => {
    const p = spawn('env', ['-u', 'NODE_OPTIONS', '-u', 'FSYNCD_TOKEN', ...extra, process.execPath, BIN, ...before, 'serve', tempDir(), '--port', '0', '--json'], { stdio: ['ignore', 'pipe', 'inherit'] })
    t.teardown(() => p.kill())
    // Listening: the destination is open, which started the pool; the rest of the threads are alike.
    await once(p.stdout, 'data')
    return readdirSync(`/proc/${String(p.pid)}/task`).length
  }
  t.equal(await serve([]) - await serve(['UV_THREADPOOL_SIZE=4']), 60, 'the same process with 64 pool threads, not 4')
  t.equal(await serve([], ['--log-level', 'warn']) - await serve(['UV_THREADPOOL_SIZE=4']), 60, 'also with an option and its value before the command')
})

t.test('run as a program, the launcher starts Node without NODE_EXTRA_CA_CERTS', async (t) => {
  // Node reads that file when it starts, and warns when it cannot: the warning tells who read it.
  const version = async (cmd: string, args: string[]): Promise<string> => {
    const p = spawn(cmd, [...args, '--version'], { env: { ...process.env, NODE_EXTRA_CA_CERTS: join(tempDir(), 'no-such-certs.pem') }, stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    p.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const [code] = await once(p, 'close') as [number | null]
    t.equal(code, 0, `${cmd} --version`)
    return err
  }
  t.match(await version(process.execPath, [BIN]), /extra certs/, 'node fsyncd.js: Node reads the variable (the check can fail)')
  t.notMatch(await version(BIN, []), /extra certs/, 'fsyncd: it does not')
})

t.test('without zstd (its native addon does not load) a server refuses to start; a client compresses with the others', async (t) => {
  // What a platform without a prebuilt binary gets: the module cannot be found.
  const hide = join(tempDir(), 'hide-zstd.cjs')
  writeFileSync(hide, `const M = require('node:module'); const resolve = M._resolveFilename
M._resolveFilename = function (request, ...rest) {
  if (request === '@toondepauw/node-zstd') { const e = new Error("Cannot find module '@toondepauw/node-zstd'"); e.code = 'MODULE_NOT_FOUND'; throw e }
  return resolve.call(this, request, ...rest)
}
`)
  const env = { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${hide}`.trim() }
  const serve = run(['serve', tempDir(), '--port', '0'], env)
  const running = setTimeout(() => serve.proc.kill(), 15_000) // one that starts would serve on
  t.equal(await serve.exited, 1, 'the server exits')
  clearTimeout(running)
  t.match(serve.stderr(), /zstd is unavailable: @toondepauw\/node-zstd did not load/)

  const src = tempDir()
  const dest = tempDir()
  const words = Array.from({ length: 40_000 }, (_, i) => ['alpha', 'beta', 'gamma', 'delta', 'epsilon'][(i * 7919) % 5]).join(' ')
  writeFileSync(join(src, 'text.txt'), words)
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  const r = await pushOnce(src, server.port, tempDir(), env, ['--json'])
  t.equal(r.code, 0, r.stderr)
  t.equal(readFileSync(join(dest, 'text.txt'), 'utf8'), words, 'synced')
  const out = r.summary?.wireBytesOut as number
  t.ok(out < words.length / 4, `compressed all the same: ${out} bytes out for ${words.length}`)
})
