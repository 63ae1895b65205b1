// deep-t: a message whose `t` is a deeply nested array makes decodeMessage throw a RangeError
// (String(type) in validateMessage's error message overflows the stack) instead of MALFORMED.
//   node bench/repro/deep-t.mjs
import { join } from 'node:path'
import { P, serve, session, tempDir, verdict } from './lib.mjs'

const header = (depth) => Buffer.concat([Buffer.from([0x81, 0xa1, 0x74]), Buffer.alloc(depth, 0x91), Buffer.from([0xc0])])
// msgpackr decodes it once its reader is optimized (as in a server that has been running a while).
for (let i = 0; i < 20000; i++) { try { P.decodeMessage(header(50)) } catch {} }
let escaped
for (let depth = 2000; depth <= 12000 && escaped === undefined; depth += 250) {
  try { P.decodeMessage(header(depth)) } catch (err) { if (!(err instanceof P.FsyncdError)) escaped = `{t: [[[…]]]} ${depth} deep: ${err.constructor.name}: ${err.message}` }
}
console.log(`in process: ${escaped ?? 'only FsyncdError'}`)

// Against a server: after auth the same header (a few KB) ends the session with "error IO".
const server = await serve(join(tempDir(), 'dest'))
const codes = new Map()
for (let i = 0; i < 300; i++) {
  const { socket, conn } = await session(server.port)
  const h = header(2000 + (i % 40) * 250)
  socket.write(Buffer.concat([P.encodeFramePrefix(h.length, 0), h]))
  try { await conn.expect('pong') } catch (err) { const c = err.code ?? err.message; codes.set(c, (codes.get(c) ?? 0) + 1) }
  socket.destroy()
}
server.stop()
console.log(`server's answers to 300 such sessions: ${JSON.stringify(Object.fromEntries(codes))}`)
verdict(escaped !== undefined || codes.has('IO'), 'a malformed message escapes as a RangeError (the server calls it IO)')
