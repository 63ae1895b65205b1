// files-leak: a `files` batch that fails while its temp files are still being created (here: an id
// named twice, UNEXPECTED) ends the session; the session's cleanup runs before those creations
// finish and misses them: their descriptors stay open and the files stay in .fsyncd/tmp.
//   node bench/repro/files-leak.mjs
import { createHash } from 'node:crypto'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { serve, session, tempDir, verdict } from './lib.mjs'

const dest = join(tempDir(), 'dest')
const server = await serve(dest)
const fds = () => readdirSync(`/proc/${server.proc.pid}/fd`).length
const before = fds()
for (let round = 0; round < 10; round++) {
  const { socket, conn } = await session(server.port)
  const body = Buffer.from('x')
  const hash = createHash('sha256').update(body).digest()
  const files = Array.from({ length: 8 }, (_, i) => [i === 7 ? 0 : i, `f${round}-${i}`, 1, 0o644, 1_700_000_000_000, hash]) // id 0 twice
  await conn.send({ t: 'files', z: 0, files }, Buffer.concat(files.map(() => body)))
  try { while (await conn.next() !== undefined); } catch (err) { if (round === 0) console.log(`server: ${err.code} ${err.message}`) }
  socket.destroy()
}
await new Promise((resolve) => setTimeout(resolve, 1000))
const after = fds()
const temps = readdirSync(join(dest, '.fsyncd', 'tmp')).length
console.log(`server descriptors: ${before} before, ${after} after 10 such batches; .fsyncd/tmp holds ${temps} files`)
server.stop()
verdict(after > before || temps > 0, 'descriptors and temp files leak per failed batch')
