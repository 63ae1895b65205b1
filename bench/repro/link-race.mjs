// link-race: two sessions (one client with two connections will do). A flips `p` between a folder
// and a symlink to a folder outside DEST; B creates `p/xN`. The store checks `p` and acts on `p/xN`
// later, so a flip in between puts B's folder outside DEST.
//   node bench/repro/link-race.mjs
import { mkdirSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { serve, session, tempDir, verdict } from './lib.mjs'

const jail = tempDir()
const dest = join(jail, 'dest')
const outside = join(jail, 'outside')
mkdirSync(outside)
const server = await serve(dest)
const drain = (conn) => { void (async () => { try { while (await conn.next() !== undefined); } catch {} })() }
const a = await session(server.port)
const b = await session(server.port)
drain(a.conn)
drain(b.conn)
const mtime = 1_700_000_000_000
let id = 1
const t0 = Date.now()
let escaped = []
while (Date.now() - t0 < 20_000 && escaped.length === 0) {
  const sends = []
  for (let i = 0; i < 20; i++) {
    sends.push(a.conn.send({ t: 'mkdir', id: id++, path: 'p', mode: 0o755, mtime }))
    sends.push(a.conn.send({ t: 'symlink', id: id++, path: 'p', target: outside, mtime }))
    sends.push(b.conn.send({ t: 'mkdir', id: id++, path: `p/x${i}`, mode: 0o755, mtime }))
  }
  await Promise.all(sends)
  await new Promise((resolve) => setTimeout(resolve, 5))
  escaped = readdirSync(outside)
}
server.stop()
console.log(escaped.length > 0 ? `after ${Date.now() - t0} ms, ${outside} (outside DEST) holds: ${escaped.join(', ')}` : 'nothing outside DEST after 20 s')
verdict(escaped.length > 0, 'a session wrote outside DEST through a symlink another session raced into place')
process.exit()
