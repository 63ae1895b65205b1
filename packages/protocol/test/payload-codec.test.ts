import t from 'tap'
import { Prng } from '@fsyncd/testkit'
import { compress, decompress, MAX_DECODED, ZSTD_MAX_WINDOW, zstdBound, zstdFits } from '../src/payload-codec.js'

const MIB = 1024 * 1024

/** Compressible bytes: words of a seeded vocabulary. */
function words (bytes: number, seed: number): Buffer {
  const r = new Prng(seed)
  const vocabulary = Array.from({ length: 300 }, () => r.bytes(3 + r.below(6)).toString('base64').replace(/[^a-z]/gi, 'q'))
  const out: string[] = []
  for (let n = 0; n < bytes; n += 8) out.push(vocabulary[r.below(vocabulary.length)] as string)
  return Buffer.from(out.join(' ')).subarray(0, bytes)
}

/** A zstd frame header (no content size, no checksum) with a `window`-log window, then `blocks`. */
function frame (windowLog: number, blocks: Buffer[], fhd = 0): Buffer {
  return Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, fhd, (windowLog - 10) << 3]), ...blocks])
}
/** A block header: `size`, `type` (0 raw, 1 RLE, 2 compressed, 3 reserved), `last`. */
function block (type: number, size: number, last: boolean, body: Buffer = Buffer.alloc(type === 1 ? 1 : size)): Buffer {
  const h = (size << 3) | (type << 1) | (last ? 1 : 0)
  return Buffer.concat([Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff]), body])
}

t.test('every codec round-trips, from empty to several MiB', async (t) => {
  for (const size of [0, 1, 300, 64 * 1024, 3 * MIB + 7]) {
    const data = words(size, size)
    for (const z of [1, 2, 3] as const) {
      const payload = Buffer.from(await compress(z, data))
      t.ok(decompress(z, payload, size).equals(data), `codec ${z}, ${size} B`)
    }
  }
  t.equal(decompress(0, Buffer.from('raw'), 3).toString(), 'raw')
})

t.test('zstd: what the encoder makes passes the check, with a bound at least its content', async (t) => {
  for (const size of [0, 5, 128 * 1024, 128 * 1024 + 1, 2 * MIB]) {
    const payload = await compress(3, words(size, 7))
    const bound = zstdBound(payload, 8 * MIB)
    t.ok(typeof bound === 'number' && bound >= size, `${size} B: bound ${String(bound)}`)
  }
})

t.test('zstd: a bomb is refused before it is decoded', async (t) => {
  // 200 RLE blocks of 128 KiB: 25 MiB from 806 bytes.
  const bomb = frame(21, Array.from({ length: 200 }, (_, i) => block(1, 128 * 1024, i === 199)))
  t.match(zstdBound(bomb, 8 * MIB), /more than/)
  t.throws(() => decompress(3, bomb, 8 * MIB), { code: 'MALFORMED' })
  const sixteen = frame(21, Array.from({ length: 16 }, (_, i) => block(1, 128 * 1024, i === 15)))
  t.equal(zstdBound(sixteen, 8 * MIB), 2 * MIB, 'the same blocks, within the limit: their exact output')
  t.equal(decompress(3, sixteen, 8 * MIB).length, 2 * MIB, 'and libzstd agrees')
  // Real content one block over the limit passes the header check and is refused once decoded.
  const over = await compress(3, words(MIB + 1000, 3))
  t.throws(() => decompress(3, Buffer.from(over), MIB), { code: 'MALFORMED' }, 'content over the limit')
})

t.test('zstd: frames the encoder never makes are refused', async (t) => {
  const ok = Buffer.from(await compress(3, words(1000, 1)))
  const cases: Array<[string, Buffer, RegExp]> = [
    ['not zstd', Buffer.from('hello world'), /not a zstd frame/],
    ['a dictionary id', frame(21, [block(0, 3, true)], 0x01), /dictionary/],
    ['the reserved bit', frame(21, [block(0, 3, true)], 0x08), /reserved bit/],
    ['a reserved block type', frame(21, [block(3, 3, true)]), /reserved block type/],
    ['a window over the limit', frame(Math.log2(ZSTD_MAX_WINDOW) + 1, [block(0, 3, true)]), /window/],
    ['a block bigger than the window', frame(10, [block(0, 2000, true)]), /block/],
    ['two frames', Buffer.concat([ok, ok]), /after the frame/],
    ['no last block', frame(21, [block(0, 3, false)]), /cut short/],
  ]
  for (const [what, payload, why] of cases) {
    t.match(zstdBound(payload, 8 * MIB), why, what)
    t.throws(() => decompress(3, payload, 8 * MIB), { code: 'MALFORMED' }, `${what}: MALFORMED`)
  }
})

t.test('zstd: every cut of a frame, and seeded byte flips, give MALFORMED or bounded bytes', async (t) => {
  const data = words(300 * 1024, 11)
  const ok = Buffer.from(await compress(3, data))
  let refused = 0
  for (let cut = 0; cut < ok.length; cut += Math.max(1, Math.floor(ok.length / 400))) {
    try {
      decompress(3, ok.subarray(0, cut), 8 * MIB)
    } catch (err) {
      if ((err as { code?: string }).code === 'MALFORMED') refused++
    }
  }
  t.equal(refused, Math.ceil(ok.length / Math.max(1, Math.floor(ok.length / 400))), 'every cut refused')
  const r = new Prng(5)
  for (let i = 0; i < 300; i++) {
    const bad = Buffer.from(ok)
    for (let k = 0; k <= r.below(3); k++) bad[r.below(bad.length)] = r.below(256)
    try {
      t.ok(decompress(3, bad, 400 * 1024).length <= 400 * 1024)
    } catch (err) {
      t.equal((err as { code?: string }).code, 'MALFORMED')
    }
  }
})

t.test('the zlib codecs keep their limit', async (t) => {
  const data = Buffer.alloc(2 * MIB, 'a')
  for (const z of [1, 2] as const) {
    const payload = Buffer.from(await compress(z, data))
    t.throws(() => decompress(z, payload, MIB), { code: 'MALFORMED' }, `codec ${z}: 2 MiB into a 1 MiB limit`)
    t.throws(() => decompress(z, Buffer.from('not compressed at all'), MIB), { code: 'MALFORMED' }, `codec ${z}: garbage`)
  }
})

t.test('zstd: content size fields and checksums are read as RFC 8878 lays them out', async (t) => {
  const magic = Buffer.from([0x28, 0xb5, 0x2f, 0xfd])
  const raw3 = block(0, 3, true, Buffer.from('abc'))
  const le = (n: number, bytes: number): Buffer => { const b = Buffer.alloc(bytes); b.writeUIntLE(n, 0, Math.min(bytes, 6)); return b }
  // Single segment, 1-byte content size: the window is the content size.
  t.equal(zstdBound(Buffer.concat([magic, Buffer.from([0x20, 3]), raw3]), 100), 3, '1-byte size')
  t.equal(zstdBound(Buffer.concat([magic, Buffer.from([0x20, 2]), raw3]), 100), 'a 3-byte block', 'a block past a single segment\'s window')
  // 2 bytes (value + 256), 4 and 8, after a window descriptor; and a 4-byte checksum at the end.
  t.equal(zstdBound(Buffer.concat([magic, Buffer.from([0x40, 0x58]), le(3 - 256 + 65536, 2).subarray(0, 2), raw3]), 100_000), 3, '2-byte size, the smaller of it and the blocks')
  t.equal(zstdBound(Buffer.concat([magic, Buffer.from([0x80, 0x58]), le(3, 4), raw3]), 100), 3, '4-byte size')
  t.equal(zstdBound(Buffer.concat([magic, Buffer.from([0xc0, 0x58]), le(3, 8), raw3]), 100), 3, '8-byte size')
  t.equal(zstdBound(Buffer.concat([magic, Buffer.from([0x84, 0x58]), le(3, 4), raw3, Buffer.alloc(4)]), 100), 3, 'with a checksum')
  t.equal(zstdBound(Buffer.concat([magic, Buffer.from([0x84, 0x58]), le(3, 4), raw3]), 100), 'frame cut short', 'its checksum missing')
  t.match(zstdBound(Buffer.concat([magic, Buffer.from([0xc0, 0x58]), le(2 ** 40, 8), raw3]), 100), /announced/, 'a content size over the limit')
  t.equal(zstdBound(Buffer.concat([magic, Buffer.from([0xc0, 0x58]), Buffer.alloc(3)]), 100), 'frame header cut short')
})

t.test('zstd: libzstd cuts blocks where content changes; zstdFits says what a server takes', async (t) => {
  // 16 KiB of text, then 16 KiB of 6-bit noise, and so on: the block headers bound the output
  // to about twice the content.
  const mixed = (bytes: number): Buffer => {
    const r = new Prng(bytes)
    const text = Buffer.from('const buffer = await client.read(offset, length) // the server answers\n'.repeat(300))
    const parts: Buffer[] = []
    for (let n = 0, i = 0; n < bytes; i++, n += 16 * 1024) parts.push(i % 2 === 0 ? text.subarray(0, 16 * 1024) : r.bytes(16 * 1024).map((b) => b & 0x3f))
    return Buffer.concat(parts).subarray(0, bytes)
  }
  const four = mixed(4 * MIB)
  const fourZ = Buffer.from(await compress(3, four))
  const bound = zstdBound(fourZ, 1e12) as number
  t.ok(bound > four.length * 1.5, `4 MiB of mixed content: its headers allow ${bound} bytes`)
  t.ok(zstdFits(fourZ), 'within MAX_DECODED all the same')
  t.ok(decompress(3, fourZ, MAX_DECODED).equals(four), 'and decoded whole')
  t.match(zstdBound(fourZ, four.length), /more than/, 'held to its exact size it would be refused')
  const six = Buffer.from(await compress(3, mixed(6 * MIB)))
  t.notOk(zstdFits(six), '6 MiB of it: a server would refuse the frame')
})
