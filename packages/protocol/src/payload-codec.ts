/**
 * The codecs of compressed payloads (`data.z`, `files.z`, `file.inline`): 0 raw, 1 deflate-raw,
 * 2 brotli, 3 zstd. Compressing is the client's choice (see the client's literals.ts); this file
 * holds what both sides must agree on, and the decoding a server does, bounded.
 *
 * zstd comes from @toondepauw/node-zstd (libzstd, prebuilt for each platform): Node 20's zlib has
 * none. Its decoder takes no output limit, so a payload is checked first (`zstdBound`): one frame,
 * no dictionary, a window within the limit, and blocks whose output, at most 128 KiB each by the
 * format, adds up to no more than the limit. A zstd bomb is refused before anything is decoded.
 */
import { createRequire } from 'node:module'
import { promisify } from 'node:util'
import { brotliCompress as brotliCompressCb, brotliDecompressSync, constants, deflateRaw as deflateRawCb, inflateRawSync } from 'node:zlib'
import { ErrorCode, FsyncdError } from './errors.js'
import type { Compression } from './messages.js'

const brotliCompress = promisify(brotliCompressCb)
const deflateRaw = promisify(deflateRawCb)

interface Zstd {
  Encoder: new (level: number) => { encode: (data: Buffer) => Promise<Buffer> }
  Decoder: new () => { decodeSync: (data: Buffer) => Buffer }
}
/** Loaded on first use: a process that never meets zstd does not load the native addon. */
let zstdModule: Zstd | undefined
const zstd = (): Zstd => (zstdModule ??= createRequire(import.meta.url)('@toondepauw/node-zstd') as Zstd)

/**
 * Why zstd cannot be used here (its native addon did not load: a platform without a prebuilt
 * binary, a broken install), or undefined when it can. A server checks at start, a client
 * before choosing it.
 */
export function zstdLoadError (): Error | undefined {
  try {
    zstd()
    return undefined
  } catch (err) {
    return new Error(`zstd is unavailable: @toondepauw/node-zstd did not load (${(err as Error).message.split('\n')[0] ?? ''})`)
  }
}
let zstdEncoder: InstanceType<Zstd['Encoder']> | undefined
let zstdDecoder: InstanceType<Zstd['Decoder']> | undefined

/** The most bytes one compressed payload may decode to (a `data` chunk, a `files` batch, an inline file). */
export const MAX_DECODED = 8 * 1024 * 1024

/**
 * brotli's quality. On 41 MB of 2,000 small files of five kinds (the bench's `varied`) in 256 KiB
 * batches, one core: q5 17.16 MB in 926 ms, q6 17.04 MB in 1,024 ms, q7 16.93 MB in 1,244 ms.
 * The whole `varied` sync (median of 3; rsync -z: 17.43 MB): q5 17.6 MB in 1.56 s, q6 17.16 MB
 * in 1.72 s, q7 17.06 MB in 2.32 s.
 */
const BROTLI_QUALITY = 6

/** zstd's level: rsync's default too (~250 MB/s on one core here, ratio near deflate 6's on text). */
export const ZSTD_LEVEL = 3

/**
 * Output bytes per step of the thread pool for the zlib codecs (node:zlib's default is 16 KiB).
 * Between steps the codec waits for the main thread, busy reading and deltifying: with steps as
 * large as the data (256 KiB at most), 20 MB of text compressed 13 % faster beside a busy main thread.
 */
const stepBytes = (data: Uint8Array): number => Math.min(Math.max(data.length, 16 * 1024), 256 * 1024)

/** `data` compressed with codec `z`, on libuv's thread pool. */
export async function compress (z: 1 | 2 | 3, data: Uint8Array): Promise<Uint8Array> {
  if (z === 3) return await (zstdEncoder ??= new (zstd().Encoder)(ZSTD_LEVEL)).encode(asBuffer(data))
  return z === 2
    ? await brotliCompress(data, { chunkSize: stepBytes(data), params: { [constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY, [constants.BROTLI_PARAM_SIZE_HINT]: data.length } })
    : await deflateRaw(data, { level: 6, chunkSize: stepBytes(data) })
}

/** A payload as sent, decoded to at most `max` bytes; MALFORMED when it cannot be, or would be more. */
export function decompress (z: Compression, payload: Buffer, max: number): Buffer {
  if (z === 0) return payload
  try {
    if (z === 1) return inflateRawSync(payload, { maxOutputLength: Math.max(max, 1) })
    if (z === 2) return brotliDecompressSync(payload, { maxOutputLength: Math.max(max, 1) })
  } catch (err) {
    throw new FsyncdError(ErrorCode.MALFORMED, `undecodable payload: ${(err as Error).message}`)
  }
  const bound = zstdBound(payload, max)
  if (typeof bound === 'string') throw new FsyncdError(ErrorCode.MALFORMED, `undecodable zstd payload: ${bound}`)
  let out: Buffer
  try {
    out = (zstdDecoder ??= new (zstd().Decoder)()).decodeSync(payload)
  } catch (err) {
    throw new FsyncdError(ErrorCode.MALFORMED, `undecodable zstd payload: ${(err as Error).message}`)
  }
  if (out.length > max) throw new FsyncdError(ErrorCode.MALFORMED, `zstd payload decodes to ${out.length} bytes, more than ${max}`)
  return out
}

const ZSTD_MAGIC = 0xfd2fb528
/** The format's largest block output (RFC 8878, Block_Maximum_Size). */
const ZSTD_BLOCK_MAX = 128 * 1024
/**
 * The largest window a payload may ask of the decoder (it allocates it whole). libzstd's
 * encoder picks 2 MiB at level 3 whatever the content's size, which it is not told.
 */
export const ZSTD_MAX_WINDOW = 8 * 1024 * 1024

/**
 * The most bytes a zstd payload can decode to, read from its headers (RFC 8878 §3.1), or why it
 * is refused: not exactly one frame, a dictionary, a window over ZSTD_MAX_WINDOW, more than
 * `max` bytes of content (a compressed block counts as the 128 KiB it may hold, so up to one
 * block more passes here: the caller checks what came out), a reserved bit or block type, or
 * a frame cut short. Costs a few header reads per 128 KiB.
 *
 * libzstd may cut a 128 KiB block where the data changes (its pre-splitter, from 1.5.7), and
 * each piece then counts 128 KiB: mixed content can fail this check with less than `max` in it.
 * So a server checks against MAX_DECODED, not a batch's exact size, and a sender checks its own
 * frames (`zstdFits`) and sends one that fails with another codec.
 */
export function zstdBound (p: Uint8Array, max: number): number | string {
  if (p.length < 6 || readU32(p, 0) !== ZSTD_MAGIC) return 'not a zstd frame'
  const fhd = p[4] as number
  const fcsFlag = fhd >> 6
  const singleSegment = (fhd & 0x20) !== 0
  if ((fhd & 0x08) !== 0) return 'reserved bit set'
  if ((fhd & 0x03) !== 0) return 'a dictionary is required'
  const checksum = (fhd & 0x04) !== 0
  let at = 5
  let window = 0
  if (!singleSegment) {
    const wd = p[at++] as number
    const base = 2 ** (10 + (wd >> 3))
    window = base + (base / 8) * (wd & 7)
  }
  const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 2 ** fcsFlag
  if (at + fcsBytes > p.length) return 'frame header cut short'
  let fcs: number | undefined
  if (fcsBytes === 1) fcs = p[at] as number
  else if (fcsBytes === 2) fcs = (p[at] as number) + ((p[at + 1] as number) << 8) + 256
  else if (fcsBytes === 4) fcs = readU32(p, at)
  else if (fcsBytes === 8) fcs = readU32(p, at) + readU32(p, at + 4) * 2 ** 32
  at += fcsBytes
  if (singleSegment) window = fcs as number
  if (window > ZSTD_MAX_WINDOW) return `a ${window}-byte window`
  if (fcs !== undefined && fcs > max) return `${fcs} bytes of content announced, more than ${max}`
  const blockMax = Math.min(window, ZSTD_BLOCK_MAX)
  let bound = 0
  for (;;) {
    if (at + 3 > p.length) return 'frame cut short'
    const header = (p[at] as number) | ((p[at + 1] as number) << 8) | ((p[at + 2] as number) << 16)
    at += 3
    const last = (header & 1) !== 0
    const type = (header >> 1) & 3
    const size = header >>> 3
    if (type === 3) return 'reserved block type'
    if (size > blockMax) return `a ${size}-byte block`
    at += type === 1 ? 1 : size
    bound += type === 2 ? blockMax : size
    if (bound > max + ZSTD_BLOCK_MAX) return `decodes to more than ${max} bytes`
    if (last) break
  }
  if (checksum) at += 4
  if (at !== p.length) return at > p.length ? 'frame cut short' : 'bytes after the frame'
  return Math.min(bound, fcs ?? bound)
}

function readU32 (p: Uint8Array, at: number): number {
  return ((p[at] as number) | ((p[at + 1] as number) << 8) | ((p[at + 2] as number) << 16) | ((p[at + 3] as number) << 24)) >>> 0
}

function asBuffer (data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
}

/** Whether a receiver will take this zstd payload (see zstdBound). */
export function zstdFits (payload: Uint8Array): boolean {
  return typeof zstdBound(payload, MAX_DECODED) === 'number'
}

/**
 * `data` compressed for sending: with codec `z`, except that a zstd frame a receiver would
 * refuse (zstdFits) goes deflate instead. Inputs of 64 KiB or less always fit.
 */
export async function encodePayload (z: 1 | 2 | 3, data: Uint8Array): Promise<{ z: 1 | 2 | 3, payload: Uint8Array }> {
  const payload = await compress(z, data)
  if (z === 3 && !zstdFits(payload)) return { z: 1, payload: await compress(1, data) }
  return { z, payload }
}
