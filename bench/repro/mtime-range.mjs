// mtime-range: an mtime beyond JavaScript Date's ±8.64e15 ms is valid on the wire (any safe
// integer) but utimes() refuses it, after the operation has half happened.
//   node bench/repro/mtime-range.mjs
import { lstatSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { serve, session, tempDir, verdict } from './lib.mjs'

const dest = join(tempDir(), 'dest')
const server = await serve(dest)
const { conn } = await session(server.port)
const huge = Number.MAX_SAFE_INTEGER
await conn.send({ t: 'mkdir', id: 1, path: 'kept', mode: 0o755, mtime: 1_700_000_000_000 })
await conn.send({ t: 'mkdir', id: 2, path: 'stray', mode: 0o700, mtime: huge })
await conn.send({ t: 'symlink', id: 3, path: 'link', target: 'kept', mtime: huge })
await conn.send({ t: 'attrs', id: 4, path: 'kept', mode: 0o711, mtime: huge })
await conn.send({ t: 'list' })
const answers = []
let listed = ['(no listing: the session ended)']
for (;;) {
  const item = await conn.next().catch((err) => { answers.push(`connection: ${err.code ?? ''} ${err.message}`) })
  if (item === undefined) break
  const { msg } = item
  if (msg.t === 'nack') answers.push(`nack ${msg.id} ${msg.code}: ${msg.message}`)
  if (msg.t === 'ack') answers.push(`ack ${msg.ids.join(',')}`)
  if (msg.t === 'error') answers.push(`error ${msg.code}: ${msg.message}`)
  if (msg.t === 'entries') { listed = msg.entries.map((e) => `${e[0]} mode ${e[2].toString(8)}`); break }
}
console.log(answers.join('\n'))
const onDisk = readdirSync(dest).filter((n) => n !== '.fsyncd')
const temps = readdirSync(join(dest, '.fsyncd', 'tmp'))
const mode = (statSync(join(dest, 'kept')).mode & 0o7777).toString(8)
console.log(`on disk: ${onDisk.join(', ')}; the server lists: ${listed.join(', ')}`)
console.log(`kept's mode on disk ${mode} (attrs was nacked); temp entries left in .fsyncd/tmp: ${temps.map((t) => `${t} (${lstatSync(join(dest, '.fsyncd', 'tmp', t)).isSymbolicLink() ? 'symlink' : 'file'})`).join(', ') || 'none'}`)
server.stop()
verdict(onDisk.includes('stray') || temps.length > 0 || mode === '711', 'nacked operations changed the destination behind the manifest')
