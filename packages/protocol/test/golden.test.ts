/** The golden vectors of protocol/SPEC.md §9, both ways. */
import t from 'tap'
import { decodeMessage, encodeFramePrefix, encodeMessage, FrameDecoder, type Message } from '../src/index.js'

const vectors: Array<[Message, string, string]> = [
  [{ t: 'ping' }, '', '0000000a000881a174a470696e67'],
  [{ t: 'delete', id: 7, path: 'a/b.txt' }, '', '0000001d001b83a174a664656c657465a2696407a470617468a7612f622e747874'],
  [{ t: 'ack', ids: [1, 2, 3] }, '', '00000011000f82a174a361636ba369647393010203'],
  [{ t: 'data', id: 7, z: 0 }, 'abc', '00000014000f83a174a464617461a2696407a17a00616263'],
]

for (const [msg, payload, hex] of vectors) {
  t.test(`golden ${msg.t}`, async (t) => {
    const header = encodeMessage(msg)
    const body = Buffer.from(payload)
    t.equal(Buffer.concat([encodeFramePrefix(header.length, body.length), header, body]).toString('hex'), hex, 'encodes to the vector')
    const frames = new FrameDecoder(1024).push(Buffer.from(hex, 'hex'))
    t.equal(frames.length, 1)
    t.same(decodeMessage(frames[0]!.header), msg, 'decodes to the message')
    t.equal(frames[0]!.payload.toString(), payload)
  })
}
