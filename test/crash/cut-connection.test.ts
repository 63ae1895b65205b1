/**
 * A TCP proxy cuts the connection after N client→server bytes, N drawn from a seeded PRNG over
 * the size of each sync (inside the handshake, at and inside frame prefixes, headers and
 * payloads), 50+ times against one server. Every cut push ends (success or a clean failure,
 * never a hang), and the next push through an uncut path converges exactly.
 */
import t from 'tap'
import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { decodeMessage } from '@fsyncd/protocol'
import { diffTrees, seededBytes, startServer, tempDir } from '../helpers/fsyncd.js'
import { CuttingProxy, openFds, Prng, pushBounded, sleep, tempFiles } from '../helpers/faults.js'

const ROUNDS = 56
const SEED = 0x5eed

/** Where in the client→server stream a cut fell, from the bytes the proxy forwarded. */
function locate (bytes: Buffer): string {
  const types: string[] = []
  let pos = 0
  for (;;) {
    if (pos === bytes.length) return types.length < 2 ? 'handshake: at a frame boundary' : `at the boundary after "${types[types.length - 1] ?? ''}"`
    const where = types.length < 2 ? 'handshake: ' : ''
    if (bytes.length - pos < 6) return `${where}inside a frame prefix`
    const len = bytes.readUInt32BE(pos)
    const h = bytes.readUInt16BE(pos + 4)
    if (bytes.length < pos + 4 + len) {
      if (bytes.length < pos + 6 + h) return `${where}inside a frame header`
      const t = decodeMessage(bytes.subarray(pos + 6, pos + 6 + h)).t
      return `${where}inside the payload of "${t}"`
    }
    types.push(decodeMessage(bytes.subarray(pos + 6, pos + 6 + h)).t)
    pos += 4 + len
  }
}

/** The files of the source, relative. */
function filesOf (root: string): string[] {
  const out: string[] = []
  const walk = (rel: string): void => {
    for (const d of readdirSync(join(root, rel), { withFileTypes: true })) {
      const p = rel === '' ? d.name : `${rel}/${d.name}`
      if (d.isDirectory()) walk(p)
      else if (d.isFile()) out.push(p)
    }
  }
  walk('')
  return out.sort()
}

t.test(`a connection cut at ${ROUNDS} seeded offsets converges every time`, async (t) => {
  const rnd = new Prng(SEED)
  const src = tempDir()
  const dest = tempDir()
  const state = tempDir()
  let serial = 0
  const write = (p: string, size: number): number => {
    writeFileSync(join(src, p), seededBytes(SEED + ++serial, size))
    return size
  }
  for (const d of ['a', 'b', 'c/deep']) mkdirSync(join(src, d), { recursive: true })
  for (let i = 0; i < 24; i++) write(`${rnd.pick(['a', 'b', 'c', 'c/deep'])}/f${i}.bin`, rnd.chance(0.2) ? rnd.int(70_000, 200_000) : rnd.int(0, 8_000))
  symlinkSync('a/f0.bin', join(src, 'link'))

  const server = await startServer(dest, { args: ['--log-level', 'warn'] })
  t.teardown(() => server.stop())
  const proxy = new CuttingProxy(server.port)
  proxy.record = true
  await proxy.listen()
  t.teardown(() => proxy.close())

  const first = await pushBounded(src, proxy.port, state, 30_000)
  t.equal(first.code, 0, `initial sync through the proxy: ${first.stderr.slice(-300)}`)
  t.same(diffTrees(src, dest), [])
  const fdsBefore = openFds(server.proc.pid)

  const where = new Map<string, number>()
  const offsets = new Set<number>()
  const failures: string[] = []
  let cuts = 0
  for (let round = 1; round <= ROUNDS; round++) {
    // Change the source so there is always something to send: rewrites, a new file, a delete,
    // sometimes a rename, a mode change, a new or removed folder.
    let bytes = 0
    const files = filesOf(src)
    bytes += write(rnd.pick(files), rnd.int(100, 30_000))
    bytes += write(rnd.pick(files), rnd.chance(0.5) ? rnd.int(70_000, 300_000) : rnd.int(0, 5_000))
    const dirs = ['a', 'b', 'c', 'c/deep', ...(existsSync(join(src, 'n')) ? ['n'] : [])]
    bytes += write(`${rnd.pick(dirs)}/r${round}.bin`, rnd.int(1_000, 60_000))
    if (files.length > 20) unlinkSync(join(src, rnd.pick(files.filter((f) => existsSync(join(src, f))))))
    if (rnd.chance(0.3)) {
      const f = rnd.pick(filesOf(src))
      renameSync(join(src, f), join(src, `${rnd.pick(['a', 'b'])}/moved${round}.bin`))
    }
    if (rnd.chance(0.2)) chmodSync(join(src, rnd.pick(filesOf(src))), rnd.pick([0o600, 0o640, 0o755]))
    if (rnd.chance(0.15)) {
      if (existsSync(join(src, 'n'))) rmSync(join(src, 'n'), { recursive: true })
      else mkdirSync(join(src, 'n/empty'), { recursive: true })
    }

    // Every sixth cut falls in the first 200 bytes: the handshake and the first frames.
    const estimate = 120 + bytes + 400
    const n = round % 6 === 0 ? rnd.int(0, 200) : rnd.int(0, estimate)
    proxy.limit = n
    proxy.mode = rnd.chance(0.3) ? 'reset' : 'destroy'
    const r = await pushBounded(src, proxy.port, state, 20_000)
    const rec = proxy.connections[proxy.connections.length - 1]
    const label = `round ${round}: cut ${proxy.mode} after ${n} bytes`
    if (r.hung) failures.push(`${label}: push --once hung`)
    if (rec?.cut === true) {
      cuts++
      offsets.add(n)
      const at = locate(rec.bytes)
      const kind = at.replace(/"[^"]*"/g, 'X')
      where.set(kind, (where.get(kind) ?? 0) + 1)
      if (r.code !== 0 && r.code !== 3) failures.push(`${label} (${at}): exit ${String(r.code)}, expected 0 or 3 (connection lost): ${r.stderr.slice(-300)}`)
    } else if (r.code !== 0) {
      failures.push(`${label}: not cut, yet exit ${String(r.code)}: ${r.stderr.slice(-300)}`)
    }

    proxy.limit = Infinity
    const clean = await pushBounded(src, proxy.port, state, 30_000)
    if (clean.code !== 0) failures.push(`${label}: the uncut push after it failed with ${String(clean.code)}: ${clean.stderr.slice(-300)}`)
    const diff = diffTrees(src, dest)
    if (diff.length > 0) failures.push(`${label}: not converged: ${diff.slice(0, 5).join('; ')}`)
    const sweep = Date.now() + 3000
    while (tempFiles(dest).length > 0 && Date.now() < sweep) await sleep(20)
    if (tempFiles(dest).length > 0) failures.push(`${label}: temp files left on the server: ${tempFiles(dest).join(', ')}`)
    if (failures.length > 5) break
  }

  t.same(failures, [], 'every cut push ended, and every push after it converged')
  t.ok(cuts >= 50, `${cuts} pushes were actually cut`)
  t.ok(offsets.size >= 50, `${offsets.size} distinct offsets`)
  t.comment([...where].sort().map(([k, v]) => `${v} × ${k}`).join('\n'))
  const handshake = [...where].filter(([k]) => k.startsWith('handshake')).reduce((s, [, v]) => s + v, 0)
  const inside = [...where].filter(([k]) => k.includes('inside') && !k.startsWith('handshake')).reduce((s, [, v]) => s + v, 0)
  t.ok(handshake >= 3, `${handshake} cuts inside the handshake`)
  t.ok(inside >= 20, `${inside} cuts inside frames after the handshake`)
  t.equal(server.proc.exitCode, null, 'the server survived every cut')
  const fdsAfter = openFds(server.proc.pid)
  if (fdsBefore !== undefined && fdsAfter !== undefined) t.ok(fdsAfter <= fdsBefore + 8, `no descriptor leak on the server (${fdsBefore} → ${fdsAfter})`)
})
