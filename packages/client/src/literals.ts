/**
 * Compression of literal bytes (what the server holds nowhere), off the main thread.
 *
 * Three codecs (see @fsyncd/protocol's payload-codec.ts); 20 MB of each kind of text in 256 KiB
 * chunks, one at a time:
 *
 *   | text                          | zstd 3           | brotli q5       | deflate 6       |
 *   | JavaScript (node_modules)     | 4.84:1  295 MB/s | 5.52:1  63 MB/s | 5.03:1  51 MB/s |
 *   | man pages                     | 3.20:1  234 MB/s | 3.45:1  45 MB/s | 3.23:1  47 MB/s |
 *   | word salad (the bench's text) | 3.71:1  233 MB/s | 3.66:1  41 MB/s | 4.01:1  20 MB/s |
 *
 * (brotli now runs at quality 6: see payload-codec.ts.)
 *
 * zstd (rsync's default too) goes unless another codec shrinks the sample 15 % more: the others
 * save 7-12 % of the bytes for 5-12 times the CPU, and on two cores that CPU is the sync's (the
 * bench's text took 1 s of it with deflate 6, 86 ms with zstd). On a link slower than the
 * compressors the bytes would matter more: choosing by the link's measured speed is left to do.
 *
 * The choice is made on a sample (the first 64 KiB): the codecs compress it and the rule above
 * picks one for the whole chunk and the next 16 MiB of the file; what the sample shows shrinking by
 * less than 10 % is sent raw until then (media, archives, encrypted data), so incompressible
 * bytes cost no compression.
 *
 * Small files travel in batches of one kind each (their extension: see the uploader), and a batch
 * of one kind compresses like one file, with the same rule. On the bench's `varied` (41 MB of
 * 2,000 files of five kinds, side by side in 16 folders, in 256 KiB batches, one core):
 *
 *   | batches           | zstd 3                  | brotli 6                | deflate 6       |
 *   | in the walk order | 18.6 MB  185 ms         | 17.0 MB  1,089 ms       | 17.9 MB  940 ms |
 *   | one kind each     | 16.6 MB  171 ms         | 16.3 MB  1,101 ms       | 16.3 MB 1,103 ms |
 *
 * (rsync -z: 17.4 MB, with one zstd stream: likely flushed where each file ends, which ends a
 * block there, though its source was not checked.) A batch of 64 KiB or less, and a small file
 * sent alone, take the smallest codec instead (encodeOnce).
 *
 * Every call runs on libuv's thread pool: the caller keeps reading and deltifying while the
 * pool compresses (see the uploader's send chain).
 */
import { compress, type Compression, encodePayload, zstdLoadError } from '@fsyncd/protocol'

/** Below this, a literal is not worth a compressor call. */
const MIN_COMPRESS = 256
/** The part of the data the codecs are tried on. */
const SAMPLE = 64 * 1024
/** The most encodeOnce takes. */
export const ENCODE_ONCE_MAX = SAMPLE
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

/** Another codec goes instead of zstd only when it makes the sample this much smaller. */
const ZSTD_UNLESS_SMALLER_BY = 0.15

/** Raw unless `payload` is smaller than `data` (by 10 % when `strict`). */
function orRaw (data: Uint8Array, z: Compression, payload: Uint8Array, strict: boolean): Encoded {
  return payload.length < (strict ? data.length * 0.9 : data.length) ? { z, payload } : { z: 0, payload: data }
}

/** Whether zstd is there (its native addon loaded): without it, brotli or deflate. */
let withZstd: boolean | undefined

/**
 * How a codec is chosen: `fast` is zstd unless another codec makes the sample 15 % smaller (see
 * above); `small` is whichever makes it smallest (one small payload: see encodeOnce).
 */
type Preference = 'fast' | 'small'

/** The codec for `sample` (see above), with its output (a sample, 64 KiB at most, always fits: see encodePayload). */
async function pick (sample: Uint8Array, preference: Preference): Promise<{ z: 1 | 2 | 3, payload: Uint8Array }> {
  withZstd ??= zstdLoadError() === undefined
  const [zstd, brotli, deflate] = await Promise.all([withZstd ? compress(3, sample) : undefined, compress(2, sample), compress(1, sample)])
  const other = brotli.length <= deflate.length ? { z: 2 as const, payload: brotli } : { z: 1 as const, payload: deflate }
  const margin = preference === 'fast' ? 1 - ZSTD_UNLESS_SMALLER_BY : 1
  return zstd === undefined || other.payload.length < zstd.length * margin ? other : { z: 3, payload: zstd }
}

/** The codec for data like `sample` (`fast`), or 0 (raw) when it does not shrink it by 10 %. */
async function chooseCodec (sample: Uint8Array): Promise<Compression> {
  const best = await pick(sample, 'fast')
  return best.payload.length >= sample.length * 0.9 ? 0 : best.z
}

/**
 * Compresses one small payload (a small file, a small batch: 64 KiB at most) with whichever codec
 * makes it smallest: on so few bytes the CPU is nothing, and zstd's frame and its lack of a
 * static dictionary cost the most (300 B of text: 133 B with zstd, 91 B with brotli). Larger
 * data goes through a LiteralEncoder.
 */
export async function encodeOnce (data: Uint8Array): Promise<Encoded> {
  if (data.length < MIN_COMPRESS) return { z: 0, payload: data }
  if (data.length > ENCODE_ONCE_MAX) throw new RangeError(`encodeOnce takes ${ENCODE_ONCE_MAX} bytes at most, not ${data.length}`)
  const best = await pick(data, 'small')
  return orRaw(data, best.z, best.payload, true)
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
 * Encodes one stream of literals in order (a file's, or one kind's batches of small files: see
 * the uploader), choosing the codec on the first chunk's sample and again every 16 MiB (a
 * zero-filled header must not decide for gigabytes of media). Calls may overlap (each starts
 * compressing at once); each resolves with its own chunk's encoding.
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
    const encoded = await encodePayload(z, data)
    return orRaw(data, encoded.z, encoded.payload, false)
  }
}
