// small-chunks: a post-auth frame that arrives one byte per TCP segment. FrameDecoder keeps every
// chunk as its own Buffer (heap per byte held) and #take shifts them off an array one by one
// (quadratic past ~64k chunks): when the frame completes the server's event loop stops for everyone.
//   node bench/repro/small-chunks.mjs [bytes=1000000]
import { join } from 'node:path'
import { P, serve, session, tempDir, verdict } from './lib.mjs'

const bytes = Number(process.argv[2] ?? 1_000_000)
const server = await serve(join(tempDir(), 'dest'))
const slow = await session(server.port)
const other = await session(server.port)
slow.socket.removeAllListeners('data')
slow.socket.on('data', () => {})
const header = P.encodeMessage({ t: 'ping' })
const frame = Buffer.concat([P.encodeFramePrefix(header.length, bytes), header, Buffer.alloc(bytes, 0x61)])
const rss0 = server.rssMiB()
const t0 = Date.now()
for (let i = 0; i < frame.length - 1; i++) {
  slow.socket.write(frame.subarray(i, i + 1))
  if (i % 4 === 3) await new Promise((resolve) => setImmediate(resolve))
}
await new Promise((resolve) => setTimeout(resolve, 500))
console.log(`${frame.length - 1} bytes sent one per segment in ${Date.now() - t0} ms; server RSS ${rss0.toFixed(0)} → ${server.rssMiB().toFixed(0)} MiB`)
slow.socket.write(frame.subarray(frame.length - 1))
await new Promise((resolve) => setTimeout(resolve, 20))
const t1 = Date.now()
await other.conn.send({ t: 'ping' })
await other.conn.expect('pong')
const waited = Date.now() - t1
console.log(`another client's ping waited ${waited} ms once the frame was complete`)
server.stop()
verdict(waited > 1000, `the server stopped for ${(waited / 1000).toFixed(1)} s`)
process.exit()
