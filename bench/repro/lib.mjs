// Shared by the reproductions in this folder: the repository's build (npx tsc -b first), a
// tokenless `fsyncd serve` on a loopback port in a fresh temp folder, and authenticated sessions.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const BIN = fileURLToPath(new URL('../../packages/cli/dist/bin.js', import.meta.url))
export const P = await import(new URL('../../packages/protocol/dist/index.js', import.meta.url).href)

const dirs = []
const servers = []
// Whatever happens, the servers go and the temp folders with them.
process.on('exit', () => {
  for (const s of servers) if (s.exitCode === null) s.kill('SIGKILL')
  for (const d of dirs) { try { rmSync(d, { recursive: true, force: true }) } catch {} }
})

export function tempDir () {
  const dir = mkdtempSync(join(tmpdir(), 'fsyncd-repro-'))
  dirs.push(dir)
  return dir
}

/** Starts `fsyncd serve DEST` (no token, loopback); resolves once it listens. */
export async function serve (dest) {
  const proc = spawn(process.execPath, [BIN, 'serve', dest, '--port', '0', '--json', '--log-level', 'error'], { stdio: ['ignore', 'pipe', 'inherit'] })
  servers.push(proc)
  let out = ''
  proc.stdout.on('data', (d) => { out += d })
  while (!out.includes('"listening"')) {
    if (proc.exitCode !== null) throw new Error('fsyncd serve exited')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const port = JSON.parse(out.split('\n').find((l) => l.includes('"listening"'))).port
  return {
    proc,
    port,
    rssMiB: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))[1]) / 1024,
    stop: () => { proc.kill('SIGTERM') },
  }
}

/** A socket that did the real handshake (clientHandshake, no token) and read `ready`. */
export async function session (port) {
  const socket = connect({ port, host: '127.0.0.1', noDelay: true })
  socket.on('error', () => {})
  await once(socket, 'connect')
  const conn = new P.Connection(socket)
  await P.clientHandshake(conn, undefined)
  conn.maxFrame = P.MAX_FRAME
  const ready = await conn.expect('ready')
  return { socket, conn, ready }
}

/** Prints the verdict; exit code 1 while the bug is there, 0 once it is fixed. */
export function verdict (reproduced, text) {
  console.log(`${reproduced ? 'REPRODUCED' : 'not reproduced (fixed?)'}: ${text}`)
  process.exitCode = reproduced ? 1 : 0
}
