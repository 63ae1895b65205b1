import t from 'tap'
import { encodeFramePrefix, ErrorCode, FRAME_PREFIX, type Frame, FrameDecoder, FsyncdError, MAX_HEADER } from '../src/index.js'
import { Prng, splitAt } from '@fsyncd/testkit'

/**
 * FrameDecoder against the framing diagram in frame.ts: a stream cut at every byte offset (undici's
 * server-fuzz-split-data idea) and in seeded random chunkings must decode to the same frames; the
 * length is judged from the 6-byte prefix alone; a stream cut inside a frame is an error; and
 * garbage never escapes as anything but FsyncdError.
 */

/** A frame laid out by hand from the diagram, not by encodeFramePrefix. */
function frameBytes (header: Buffer, payload: Buffer): Buffer {
  const prefix = Buffer.alloc(6)
  prefix.writeUInt32BE(2 + header.length + payload.length, 0)
  prefix.writeUInt16BE(header.length, 4)
  return Buffer.concat([prefix, header, payload])
}

/** A raw 6-byte prefix with arbitrary (possibly lying) fields. */
function prefixOf (len: number, headerLength: number): Buffer {
  const b = Buffer.alloc(6)
  b.writeUInt32BE(len, 0)
  b.writeUInt16BE(headerLength, 4)
  return b
}

function sampleFrames (r: Prng, count: number, maxPayload: number): Frame[] {
  const frames: Frame[] = []
  for (let i = 0; i < count; i++) {
    const h = r.pick([1, 2, 5, 6, 7, 40, 255, 300])
    const p = r.pick([0, 0, 1, 5, 6, 7, 64, maxPayload])
    frames.push({ header: r.bytes(h), payload: r.bytes(p) })
  }
  return frames
}

function streamOf (frames: Frame[]): Buffer {
  return Buffer.concat(frames.map((f) => frameBytes(f.header, f.payload)))
}

/** Pushes the chunks, returning every frame (copied, so later pushes cannot alter them). */
function decodeAll (d: FrameDecoder, chunks: Buffer[]): Frame[] {
  const out: Frame[] = []
  for (const c of chunks) {
    for (const f of d.push(c)) out.push({ header: Buffer.from(f.header), payload: Buffer.from(f.payload) })
  }
  return out
}

/** A compact first difference, so a failure names the frame instead of dumping megabytes. */
function firstMismatch (got: Frame[], want: Frame[]): string | undefined {
  if (got.length !== want.length) return `${got.length} frames, want ${want.length}`
  for (let i = 0; i < want.length; i++) {
    const g = got[i] as Frame
    const w = want[i] as Frame
    if (!g.header.equals(w.header)) return `frame ${i}: header differs`
    if (!g.payload.equals(w.payload)) return `frame ${i}: payload differs (${g.payload.length} vs ${w.payload.length} bytes)`
  }
  return undefined
}

function codeOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    return err instanceof FsyncdError ? err.code : `not an FsyncdError: ${String(err)}`
  }
  return 'no error'
}

t.test('encodeFramePrefix matches the diagram byte for byte', async (t) => {
  t.same([...encodeFramePrefix(3, 5)], [0, 0, 0, 10, 0, 3], 'len = 2 + H + P, then H, big-endian')
  t.same([...encodeFramePrefix(0x1234, 0x010000)], [0, 1, 0x12, 0x36, 0x12, 0x34], 'multi-byte fields are big-endian')
  t.equal(encodeFramePrefix(1, 0).length, FRAME_PREFIX)
  t.equal(codeOf(() => encodeFramePrefix(MAX_HEADER, 0)), 'no error', 'a header of exactly MAX_HEADER fits')
  t.equal(codeOf(() => encodeFramePrefix(MAX_HEADER + 1, 0)), ErrorCode.FRAME_TOO_LARGE, 'a header over MAX_HEADER cannot be framed')
  const tooLong = codeOf(() => encodeFramePrefix(1, 2 ** 32))
  t.equal(tooLong, ErrorCode.FRAME_TOO_LARGE, `a frame whose length overflows u32 cannot be framed (got ${tooLong})`)
})

t.test('a stream cut at every byte offset decodes to the same frames', async (t) => {
  const r = new Prng(1)
  const frames = sampleFrames(r, 24, 700)
  const stream = streamOf(frames)
  let bad = 0
  for (let cut = 0; cut <= stream.length; cut++) {
    const d = new FrameDecoder(1 << 20)
    const problem = firstMismatch(decodeAll(d, [stream.subarray(0, cut), stream.subarray(cut)]), frames) ??
      (d.buffered === 0 ? undefined : `${d.buffered} bytes left over`)
    if (problem !== undefined && bad++ < 5) t.fail(`cut at ${cut}: ${problem}`)
  }
  t.equal(bad, 0, `all ${stream.length + 1} two-way cuts of ${frames.length} frames (${stream.length} bytes) decode alike`)
})

t.test('a stream cut at every pair of offsets decodes to the same frames', async (t) => {
  const r = new Prng(2)
  const frames = sampleFrames(r, 6, 9).map((f) => ({ header: f.header.subarray(0, 7), payload: f.payload }))
  const stream = streamOf(frames)
  let bad = 0
  let cases = 0
  for (let a = 0; a <= stream.length; a++) {
    for (let b = a; b <= stream.length; b++) {
      cases++
      const d = new FrameDecoder(1024)
      const problem = firstMismatch(decodeAll(d, [stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)]), frames)
      if (problem !== undefined && bad++ < 5) t.fail(`cuts at ${a},${b}: ${problem}`)
    }
  }
  t.equal(bad, 0, `all ${cases} three-way cuts of a ${stream.length}-byte stream decode alike`)
})

t.test('byte-at-a-time and seeded random chunkings decode to the same frames', async (t) => {
  const r = new Prng(3)
  const frames = sampleFrames(r, 40, 5000)
  const stream = streamOf(frames)
  const d = new FrameDecoder(1 << 20)
  const oneByOne: Buffer[] = []
  for (let i = 0; i < stream.length; i++) oneByOne.push(stream.subarray(i, i + 1))
  t.equal(firstMismatch(decodeAll(d, oneByOne), frames), undefined, `${stream.length} single bytes`)
  t.equal(d.buffered, 0)

  let bad = 0
  const runs = 300
  for (let run = 0; run < runs; run++) {
    const seed = 1000 + run
    const rr = new Prng(seed)
    const dd = new FrameDecoder(1 << 20)
    const chunks = splitAt(stream, rr.chunking(stream.length, rr.pick([3, 17, 700, 9000])))
    const problem = firstMismatch(decodeAll(dd, chunks), frames)
    if (problem !== undefined && bad++ < 5) t.fail(`seed ${seed}: ${problem}`)
  }
  t.equal(bad, 0, `${runs} random chunkings decode alike`)
})

t.test('frames come out whole even when many arrive in one chunk, with empty chunks in between', async (t) => {
  const r = new Prng(4)
  const frames = sampleFrames(r, 50, 100)
  const stream = streamOf(frames)
  const d = new FrameDecoder(1024)
  t.same(d.push(Buffer.alloc(0)), [], 'an empty chunk yields nothing')
  t.equal(firstMismatch(decodeAll(d, [Buffer.alloc(0), stream, Buffer.alloc(0)]), frames), undefined, `${frames.length} frames in a single chunk`)
  t.doesNotThrow(() => d.end(), 'end() after whole frames is clean')
  t.doesNotThrow(() => new FrameDecoder(10).end(), 'end() on a fresh decoder is clean')
})

t.test('an oversize length is refused as soon as the 6-byte prefix arrives', async (t) => {
  const max = 1024
  for (const body of [max + 1, max + 2, 4 * 1024 * 1024, 0xffffffff - 2]) {
    const d = new FrameDecoder(max)
    const prefix = prefixOf(body + 2, 1)
    for (let i = 0; i < 5; i++) t.same(d.push(prefix.subarray(i, i + 1)), [], `body ${body}: prefix byte ${i} alone is not yet judged`)
    t.equal(codeOf(() => d.push(prefix.subarray(5))), ErrorCode.FRAME_TOO_LARGE, `body ${body}: refused on the 6th prefix byte, before any body byte`)
    t.ok(d.buffered <= FRAME_PREFIX, `body ${body}: nothing beyond the prefix was buffered`)
  }
  const whole = new FrameDecoder(max)
  t.equal(codeOf(() => whole.push(prefixOf(max + 3, 1))), ErrorCode.FRAME_TOO_LARGE, 'refused when the prefix arrives in one chunk')

  const atLimit = new FrameDecoder(max)
  const header = Buffer.from([0xc0])
  const payload = new Prng(5).bytes(max - 1)
  t.same(atLimit.push(frameBytes(header, payload).subarray(0, FRAME_PREFIX)), [], 'a frame of exactly maxFrame is not refused')
  const got = atLimit.push(Buffer.concat([header, payload]))
  t.equal(got.length, 1)
  t.ok(got[0]?.payload.equals(payload), 'and decodes whole')

  const raised = new FrameDecoder(max)
  raised.maxFrame = 4096
  t.equal(codeOf(() => raised.push(frameBytes(header, Buffer.alloc(3000)))), 'no error', 'raising maxFrame admits bigger frames')
  raised.maxFrame = 100
  t.equal(codeOf(() => raised.push(prefixOf(2 + 101, 1))), ErrorCode.FRAME_TOO_LARGE, 'lowering it refuses them again')
})

t.test('a header length of 0, or longer than the frame, is MALFORMED on the prefix alone', async (t) => {
  const cases: Array<[string, number, number]> = [
    ['header length 0, empty body', 2, 0],
    ['header length 0 with a payload', 2 + 10, 0],
    ['header longer than the frame', 2 + 5, 6],
    ['header far longer than the frame', 2, 0xffff],
    ['len 0', 0, 1],
    ['len 1', 1, 0],
    ['len 0, header 0', 0, 0],
  ]
  for (const [name, len, h] of cases) {
    const d = new FrameDecoder(1 << 20)
    t.equal(codeOf(() => d.push(prefixOf(len, h))), ErrorCode.MALFORMED, name)
  }
  const d = new FrameDecoder(1 << 20)
  t.same(d.push(prefixOf(2 + 1, 1)), [], 'header length 1 of a 1-byte body is well formed (waits for the body)')
  t.equal(d.push(Buffer.from([0x90])).length, 1)
})

t.test('end() inside a frame is CLOSED, at every offset of the frame', async (t) => {
  const frame = frameBytes(Buffer.from([0x81, 0xa1, 0x74, 0xa4, 0x70, 0x69, 0x6e, 0x67]), Buffer.from('payload'))
  let bad = 0
  for (let n = 1; n < frame.length; n++) {
    const d = new FrameDecoder(1024)
    d.push(frame)
    d.push(frame.subarray(0, n))
    const code = codeOf(() => d.end())
    if (code !== ErrorCode.CLOSED && bad++ < 5) t.fail(`cut after ${n} of ${frame.length} bytes: ${code}`)
  }
  t.equal(bad, 0, `a whole frame then ${frame.length - 1} different partial ones: end() is CLOSED for each`)
})

t.test('seeded fuzz: garbage never hangs, never throws anything but FsyncdError, never holds more than a frame', async (t) => {
  const runs = 400
  let bad = 0
  const codes = new Map<string, number>()
  let framesSeen = 0
  for (let run = 0; run < runs; run++) {
    const seed = 5000 + run
    const r = new Prng(seed)
    const maxFrame = r.pick([0, 1, 7, 64, 1024, 65536])
    const d = new FrameDecoder(maxFrame)
    // Garbage, or valid frames with bytes flipped, so some garbage is plausible enough to get deep.
    let input: Buffer
    if (r.chance(0.5)) {
      input = r.bytes(r.between(0, 3000))
    } else {
      input = Buffer.from(streamOf(sampleFrames(r, r.between(1, 8), 50)))
      for (let k = r.between(1, 4); k > 0; k--) input[r.below(input.length)] = r.u32() & 0xff
    }
    let outcome = 'ok'
    try {
      for (const chunk of splitAt(input, r.chunking(input.length, r.pick([1, 5, 64, 4096])))) {
        const frames = d.push(chunk)
        framesSeen += frames.length
        for (const f of frames) {
          if (f.header.length === 0 || f.header.length + f.payload.length > maxFrame) throw new Error(`seed ${seed}: decoded an impossible frame`)
        }
        if (d.buffered > FRAME_PREFIX + maxFrame) throw new Error(`seed ${seed}: holds ${d.buffered} bytes with maxFrame ${maxFrame}`)
      }
      d.end()
    } catch (err) {
      if (err instanceof FsyncdError && ([ErrorCode.MALFORMED, ErrorCode.FRAME_TOO_LARGE, ErrorCode.CLOSED] as string[]).includes(err.code)) {
        outcome = err.code
      } else {
        outcome = 'bad'
        if (bad++ < 5) t.fail(`seed ${seed}: ${String(err)}`)
      }
    }
    codes.set(outcome, (codes.get(outcome) ?? 0) + 1)
  }
  t.equal(bad, 0, `${runs} seeded garbage streams: only FsyncdError escapes`)
  t.ok((codes.get(ErrorCode.MALFORMED) ?? 0) > 0 && (codes.get(ErrorCode.FRAME_TOO_LARGE) ?? 0) > 0 && (codes.get(ErrorCode.CLOSED) ?? 0) > 0,
    `the fuzz reaches every failure (${JSON.stringify(Object.fromEntries(codes))})`)
  t.ok(framesSeen > 0, `and some garbage decodes into frames (${framesSeen})`)
})
