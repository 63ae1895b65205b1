import xxhash from 'xxhash-wasm'

/**
 * The strong checksum that confirms a weak-sum hit: xxh64 with seed 0, as an unsigned 64-bit
 * `bigint` (the form xxhash-wasm returns, and the element type of the `BigUint64Array` the index
 * stores them in, so a comparison needs no conversion).
 *
 * Why 64 bits, unseeded: the index is persistent (built once from pushed content, cached,
 * serialized), so a per-session seed as in rsync would force a rebuild per session. A 64-bit
 * collision between honest blocks is negligible (2⁻⁶⁴ per comparison), and a crafted one can only
 * make the server rebuild a wrong file, which its SHA-256 check of the result catches (the client
 * then resends the data). Content identity never rests on this hash.
 */
export interface StrongHasher {
  /** xxh64 (seed 0) of `data[start, end)`. */
  strong64 (data: Uint8Array, start: number, end: number): bigint
}

let api: ReturnType<typeof xxhash> | undefined

/** Instantiates the WebAssembly module once per process; later calls share it. */
export async function createStrongHasher (): Promise<StrongHasher> {
  api ??= xxhash().catch((err: unknown) => {
    api = undefined // let a later call try again
    throw err
  })
  const { h64Raw } = await api
  return {
    strong64 (data, start, end) {
      return h64Raw(data.subarray(start, end))
    },
  }
}
