/**
 * TLS through the real CLI: with a token the connection is TLS 1.3 keyed by it (nothing readable
 * on the wire), a mismatch of settings between the two sides is refused with exit 4 and says
 * which, a server beyond loopback needs TLS or an explicit --insecure, and a stranger stalling
 * in the TLS handshake is cut at the pre-auth deadline while others are served.
 */
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { diffTrees, LoopbackProxy, pushOnce, run, snapshot, startServer, tempDir, waitFor } from '../helpers/fsyncd.js'

const TOKEN = 'tls-test-token-0123456789abcdef'
const MARKER = 'plaintext-marker-7f3a'

/** A proxy that keeps every byte it forwards, both ways. */
class RecordingProxy extends LoopbackProxy {
  readonly chunks: Buffer[] = []
  protected relay (client: Socket, upstream: Socket): void {
    client.on('data', (d: Buffer) => this.chunks.push(d))
    upstream.on('data', (d: Buffer) => this.chunks.push(d))
    client.pipe(upstream)
    upstream.pipe(client)
  }

  get bytes (): Buffer {
    return Buffer.concat(this.chunks)
  }
}

function sourceWithMarker (): string {
  const src = tempDir()
  // Names travel in message headers and small files inline: both would show on a plain wire.
  writeFileSync(join(src, `${MARKER}.txt`), `${MARKER}\n`)
  return src
}

async function syncThroughRecorder (serverArgs: string[], pushArgs: string[]): Promise<{ code: number | null, stderr: string, wire: Buffer, src: string, dest: string }> {
  const src = sourceWithMarker()
  const dest = tempDir()
  const server = await startServer(dest, { args: serverArgs, env: { FSYNCD_TOKEN: TOKEN } })
  const proxy = new RecordingProxy(server.port)
  await proxy.listen()
  try {
    const r = await pushOnce(src, proxy.port, tempDir(), { FSYNCD_TOKEN: TOKEN }, pushArgs)
    return { code: r.code, stderr: r.stderr, wire: proxy.bytes, src, dest }
  } finally {
    await proxy.close()
    await server.stop()
  }
}

t.test('with a token the wire is TLS 1.3; with --insecure on both sides it is plain', async (t) => {
  const secure = await syncThroughRecorder([], [])
  t.equal(secure.code, 0, secure.stderr)
  t.same(diffTrees(secure.src, secure.dest), [], 'synced over TLS')
  t.equal(secure.wire[0], 0x16, 'the client opens with a TLS handshake record')
  t.equal(secure.wire.indexOf(MARKER), -1, 'the file name and content never appear on the wire')

  // The same sync in the clear shows the marker: the check above can fail.
  const plain = await syncThroughRecorder(['--insecure'], ['--insecure'])
  t.equal(plain.code, 0, plain.stderr)
  t.same(diffTrees(plain.src, plain.dest), [])
  t.ok(plain.wire.indexOf(MARKER) >= 0, 'in the clear the marker is readable')
})

t.test('settings that differ between the sides are refused with exit 4 and a reason', async (t) => {
  const dest = tempDir()
  const tlsServer = await startServer(dest, { env: { FSYNCD_TOKEN: TOKEN } })
  t.teardown(() => tlsServer.stop())
  t.match(tlsServer.stdout(), /"tls":true/, 'the listening line says TLS')
  const src = sourceWithMarker()

  const insecureClient = await pushOnce(src, tlsServer.port, tempDir(), { FSYNCD_TOKEN: TOKEN }, ['--insecure'])
  t.equal(insecureClient.code, 4, 'a plain client to a TLS server: exit 4')
  t.match(insecureClient.stderr, /requires TLS/)

  const noToken = await pushOnce(src, tlsServer.port, tempDir())
  t.equal(noToken.code, 4, 'no token: exit 4')
  t.match(noToken.stderr, /requires TLS 1\.3 keyed by the token/)

  const wrongToken = await pushOnce(src, tlsServer.port, tempDir(), { FSYNCD_TOKEN: 'another-token-entirely-0000' })
  t.equal(wrongToken.code, 4, 'another token: exit 4 (the TLS handshake fails)')
  t.match(wrongToken.stderr, /TLS handshake failed: the token differs/)
  t.equal(snapshot(dest).size, 0, 'nothing written by any of them')

  const plainDest = tempDir()
  const plainServer = await startServer(plainDest, { args: ['--insecure'], env: { FSYNCD_TOKEN: TOKEN } })
  t.teardown(() => plainServer.stop())
  const tlsClient = await pushOnce(src, plainServer.port, tempDir(), { FSYNCD_TOKEN: TOKEN })
  t.equal(tlsClient.code, 4, 'a TLS client to an --insecure server: exit 4')
  t.match(tlsClient.stderr, /does not speak TLS/)
  t.equal(snapshot(plainDest).size, 0)
  t.equal(tlsServer.proc.exitCode, null, 'the servers keep running')
  t.equal(plainServer.proc.exitCode, null)
})

t.test('beyond loopback the server needs TLS or --insecure', async (t) => {
  const refused = run(['serve', tempDir(), '--host', '0.0.0.0', '--port', '0'])
  t.equal(await refused.exited, 2, 'no token, no --insecure: exit 2')
  t.match(refused.stderr(), /needs TLS.*--insecure/s)

  const secure = await startServer(tempDir(), { args: ['--host', '0.0.0.0'], env: { FSYNCD_TOKEN: TOKEN } })
  t.match(secure.stdout(), /"tls":true/, 'with a token: TLS')
  await secure.stop()

  const insecure = await startServer(tempDir(), { args: ['--host', '0.0.0.0', '--insecure'], env: { FSYNCD_TOKEN: TOKEN } })
  t.match(insecure.stdout(), /"tls":false/, 'with --insecure: plain, by request')
  t.match(insecure.stderr(), /unencrypted/, 'and a warning')
  await insecure.stop()
})

t.test('a stranger stalling in the TLS handshake is cut at the pre-auth deadline', async (t) => {
  const dest = tempDir()
  const server = await startServer(dest, { env: { FSYNCD_TOKEN: TOKEN } })
  t.teardown(() => server.stop())
  const opened = Date.now()
  const closedAt = (s: Socket): Promise<number> => new Promise((resolve) => s.on('close', () => resolve(Date.now() - opened)))
  const open = async (): Promise<Socket> => await new Promise((resolve, reject) => {
    const s = connect(server.port, '127.0.0.1', () => resolve(s))
    s.on('error', reject)
  })
  const silent = await open()
  const dribbler = await open()
  silent.on('error', () => {})
  dribbler.on('error', () => {})
  const silentClosed = closedAt(silent)
  const dribblerClosed = closedAt(dribbler)
  // The start of a ClientHello, one byte every 300 ms: never a whole handshake.
  const hello = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, ...Array(64).fill(7)])
  let sent = 0
  const drip = setInterval(() => { if (!dribbler.destroyed && sent < hello.length) dribbler.write(hello.subarray(sent, ++sent)) }, 300)
  t.teardown(() => clearInterval(drip))

  const src = sourceWithMarker()
  const r = await pushOnce(src, server.port, tempDir(), { FSYNCD_TOKEN: TOKEN })
  t.equal(r.code, 0, `served meanwhile: ${r.stderr}`)
  t.same(diffTrees(src, dest), [])

  const silentMs = await waitFor(async () => await Promise.race([silentClosed, new Promise<undefined>((resolve) => setTimeout(resolve, 100))]), 20_000, () => 'silent socket still open')
  const dribblerMs = await waitFor(async () => await Promise.race([dribblerClosed, new Promise<undefined>((resolve) => setTimeout(resolve, 100))]), 20_000, () => 'dribbling socket still open')
  t.ok(silentMs >= 5_000 && silentMs <= 15_000, `the silent socket was closed after ${silentMs} ms`)
  t.ok(dribblerMs >= 5_000 && dribblerMs <= 15_000, `the dribbling one after ${dribblerMs} ms (${sent} bytes sent)`)
  t.equal(server.proc.exitCode, null, 'the server is still running')
})
