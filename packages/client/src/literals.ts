/**
 * Compression of literal bytes (what the server holds nowhere), off the main thread.
 *
 * Two codecs, because neither wins everywhere (256 KiB chunks, one core):
 *
 *   | text                          | brotli q5       | deflate 6       |
 *   | JavaScript (node_modules)     | 4.74:1  59 MB/s | 4.07:1  54 MB/s |
 *   | Debian docs                   | 6.38:1  80 MB/s | 5.65:1  78 MB/s |
 *   | word salad (the bench's text) | 3.66:1  42 MB/s | 4.01:1  21 MB/s |
 *
 * The choice is made on a sample (the first 64 KiB): both codecs compress it and the smaller
 * wins for the whole chunk and the next 16 MiB of the file; what the sample shows shrinking by
 * less than 10 % is sent raw until then (media, archives, encrypted data), so incompressible
 * bytes cost no compression. Trying both codecs on whole chunks, as before, cost twice the CPU for a choice
 * the sample makes as well.
 *
 * Every call runs on libuv's thread pool: the caller keeps reading and deltifying while the
 * pool compresses (see the uploader's send chain), which on two cores nearly halves the time of
 * a sync made mostly of text.
 */
import { promisify } from 'node:util'
import { brotliCompress as brotliCompressCb, constants, deflateRaw as deflateRawCb } from 'node:zlib'
import type { Compression } from '@fsyncd/protocol'

const brotliCompress = promisify(brotliCompressCb)
const deflateRaw = promisify(deflateRawCb)

/** Below this, a literal is not worth a compressor call. */
const MIN_COMPRESS = 256
/** The part of the data both codecs are tried on. */
const SAMPLE = 64 * 1024
/** A file's codec is chosen again after this many bytes: its first bytes may not be like the rest. */
const RECHOOSE_EVERY = 16 * 1024 * 1024
/** Bytes of a small file whose byte histogram decides whether it is worth compressing. */
const ENTROPY_SAMPLE = 4096
/**
 * Bits per byte (order 0) above which a small file goes raw. Random bytes measure 7.6 (500 B) to
 * 7.95 (4 KiB), text 4–5, executables and most structured binaries below 7.
 */
const RAW_ENTROPY = 7.5

export interface Encoded { z: Compression, payload: Uint8Array }

/**
 * Output bytes per step of the thread pool (node:zlib's default is 16 KiB). Between steps the
 * codec waits for this thread, which is busy reading and deltifying: with steps as large as
 * the data (256 KiB at most), 20 MB of text compressed 13 % faster beside a busy main thread.
 */
const stepBytes = (data: Uint8Array): number => Math.min(Math.max(data.length, 16 * 1024), 256 * 1024)

async function compress (z: 1 | 2, data: Uint8Array): Promise<Uint8Array> {
  return z === 2
    ? await brotliCompress(data, { chunkSize: stepBytes(data), params: { [constants.BROTLI_PARAM_QUALITY]: 5, [constants.BROTLI_PARAM_SIZE_HINT]: data.length } })
    : await deflateRaw(data, { level: 6, chunkSize: stepBytes(data) })
}

/** Raw unless `payload` is smaller than `data` (by 10 % when `strict`). */
function orRaw (data: Uint8Array, z: Compression, payload: Uint8Array, strict: boolean): Encoded {
  return payload.length < (strict ? data.length * 0.9 : data.length) ? { z, payload } : { z: 0, payload: data }
}

/** The codec that shrinks `sample` most, or 0 (raw) when neither shrinks it by 10 %. */
async function chooseCodec (sample: Uint8Array): Promise<Compression> {
  const [brotli, deflate] = await Promise.all([compress(2, sample), compress(1, sample)])
  const best = brotli.length <= deflate.length ? brotli : deflate
  if (best.length >= sample.length * 0.9) return 0
  return best === brotli ? 2 : 1
}

/**
 * Compresses `data` with the codec its sample picks: one buffer (a batch of small files, or a
 * file sent in one frame).
 */
export async function encodeOnce (data: Uint8Array): Promise<Encoded> {
  if (data.length < MIN_COMPRESS) return { z: 0, payload: data }
  if (data.length <= SAMPLE) {
    const [brotli, deflate] = await Promise.all([compress(2, data), compress(1, data)])
    return brotli.length <= deflate.length ? orRaw(data, 2, brotli, true) : orRaw(data, 1, deflate, true)
  }
  const z = await chooseCodec(data.subarray(0, SAMPLE))
  return z === 0 ? { z, payload: data } : orRaw(data, z, await compress(z, data), true)
}

/**
 * Whether a small file looks worth compressing: the order-0 entropy of its first bytes. Costs
 * microseconds, where compressing random bytes to learn they do not shrink costs milliseconds.
 * Files too short to judge go with the compressible ones: in a batch they share a compressor
 * with the rest (many small config or source files shrink together).
 */
export function looksCompressible (data: Uint8Array): boolean {
  const n = Math.min(data.length, ENTROPY_SAMPLE)
  if (n < MIN_COMPRESS) return true
  const counts = new Uint32Array(256)
  for (let i = 0; i < n; i++) counts[data[i]!]!++
  let bits = 0
  for (let b = 0; b < 256; b++) {
    const c = counts[b]!
    if (c > 0) bits -= c * Math.log2(c / n)
  }
  return bits / n <= RAW_ENTROPY
}

/**
 * Encodes one file's literals in order, choosing the codec on the first chunk's sample and again
 * every 16 MiB (a zero-filled header must not decide for gigabytes of media). Calls may overlap
 * (each starts compressing at once); each resolves with its own chunk's encoding.
 */
export class LiteralEncoder {
  #codec: Promise<Compression> | undefined
  /** Literal bytes encoded since the codec was chosen. */
  #since = 0

  async encode (data: Uint8Array): Promise<Encoded> {
    if (data.length < MIN_COMPRESS) return { z: 0, payload: data }
    if (this.#since >= RECHOOSE_EVERY) {
      this.#codec = undefined
      this.#since = 0
    }
    this.#since += data.length
    this.#codec ??= chooseCodec(data.subarray(0, SAMPLE))
    const z = await this.#codec
    if (z === 0) return { z, payload: data }
    return orRaw(data, z, await compress(z, data), false)
  }
}
