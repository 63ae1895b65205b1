// header-limit: valid messages within the schema's list limits exceed the 65,535-byte frame header.
//   node bench/repro/header-limit.mjs
// 1. A server whose destination holds 1,500 files cannot list it (a client without a cached view
//    of the server, e.g. a new machine or a lost --state-dir, always asks for the listing).
// 2. The client's `files` batch (up to 1,024 small files) fails with paths of ~20 bytes.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { BIN, P, serve, session, tempDir, verdict } from './lib.mjs'

const entries = Array.from({ length: P.MAX_ENTRIES_PER_MESSAGE }, (_, i) => [`folder/file-${i}.txt`, 0, 0o644, 1_700_000_000_000, 1234, Buffer.alloc(32, 1)])
const header = P.encodeMessage({ t: 'entries', entries, done: true })
console.log(`an entries message of ${entries.length} entries (the schema's limit) encodes to ${header.length} bytes; a frame header holds ${P.MAX_HEADER}`)

const dest = join(tempDir(), 'dest')
mkdirSync(join(dest, 'd'), { recursive: true })
for (let i = 0; i < 1500; i++) writeFileSync(join(dest, 'd', String(i)), String(i))
const server = await serve(dest)
let listing
try {
  const { conn } = await session(server.port)
  await conn.send({ t: 'list' })
  let n = 0
  for (;;) {
    const m = await conn.expect('entries')
    n += m.entries.length
    if (m.done) break
  }
  listing = `listed ${n} entries`
} catch (err) {
  listing = `list failed: ${err.code} ${err.message}`
}
server.stop()
console.log(`server with 1,500 files: ${listing}`)

const src = join(tempDir(), 'src')
mkdirSync(join(src, 'some-folder'), { recursive: true })
for (let i = 0; i < 1100; i++) writeFileSync(join(src, 'some-folder', `small-file-${i}.txt`), String(i))
const server2 = await serve(join(tempDir(), 'dest'))
const push = spawnSync(process.execPath, [BIN, 'push', src, `127.0.0.1:${server2.port}`, '--once', '--state-dir', join(tempDir(), 'state'), '--log-level', 'error'], { encoding: 'utf8', env: { ...process.env, FSYNCD_TOKEN: '' } })
server2.stop()
console.log(`push of 1,100 small files named some-folder/small-file-N.txt: exit ${push.status} ${push.stderr.trim().split('\n').pop() ?? ''}`)
verdict(listing.startsWith('list failed') || push.status !== 0, 'a valid listing or files batch cannot be framed')
