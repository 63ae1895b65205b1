/**
 * Compression of literal bytes (what the server holds nowhere). Brotli quality 5: measured on
 * 256 KiB of log text it packs 13.4:1 at ~107 MB/s, where deflate-6 packs 8.6:1 at ~124 MB/s
 * and deflate-1 6.6:1 at ~322 MB/s. A file whose first chunk does not shrink by 10 % is sent raw
 * from then on (media, archives, encrypted data), so incompressible bytes cost no CPU.
 */
import { promisify } from 'node:util'
import { brotliCompress as brotliCompressCb, brotliCompressSync, constants } from 'node:zlib'
import type { Compression } from '@fsyncd/protocol'

const brotliCompress = promisify(brotliCompressCb)

/** Below this, a literal is not worth a compressor call. */
const MIN_COMPRESS = 256

function brotliOptions (length: number): { params: Record<number, number> } {
  return { params: { [constants.BROTLI_PARAM_QUALITY]: 5, [constants.BROTLI_PARAM_SIZE_HINT]: length } }
}

/** One small buffer, compressed on this thread (a thread-pool hop costs more than the work). */
export function encodeSmall (data: Uint8Array): { z: Compression, payload: Uint8Array } {
  if (data.length < MIN_COMPRESS) return { z: 0, payload: data }
  const packed = brotliCompressSync(data, brotliOptions(data.length))
  return packed.length < data.length * 0.9 ? { z: 2, payload: packed } : { z: 0, payload: data }
}

export class LiteralEncoder {
  #compressible = true

  async encode (data: Uint8Array): Promise<{ z: Compression, payload: Uint8Array }> {
    if (!this.#compressible || data.length < MIN_COMPRESS) return { z: 0, payload: data }
    const packed = await brotliCompress(data, brotliOptions(data.length))
    if (packed.length < data.length * 0.9) return { z: 2, payload: packed }
    this.#compressible = false
    return { z: 0, payload: data }
  }
}
