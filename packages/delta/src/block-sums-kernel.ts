import { assemble, type Instr } from './wasm-emitter.js'

/**
 * The weak sums of consecutive whole blocks, in WebAssembly SIMD: what indexing spends most of
 * its time on (the sums of every block of every file the client sends and of every local file
 * it indexes). Exactly `weakSum` of each block (weak-sum.ts):
 *
 *     s1 = Σ x[i],  s2 = Σ (n − i)·x[i]   (each mod 2¹⁶),  digest s1 | s2 << 16
 *
 * Sixteen bytes a step. Within a step starting with sum s1₀ the byte loop adds 16·s1₀ + W to s2,
 * W = Σ_j (16 − j)·v[j], and S = Σ_j v[j] to s1. Over the steps k of a block that is
 *
 *     s1 = Σ_k S_k,    s2 = 16·Σ_k (S_0 + … + S_{k−1}) + Σ_k W_k
 *
 * kept in i32x4 lanes: A (partial S), P (`$prefix`: A before each step, so Σ P = the prefix sums), and W
 * (dot products of the bytes with 16…1), each folded across lanes once per block. Lanes wrap
 * mod 2³², and only the low 16 bits of the result count.
 *
 * Measured (100 MiB of random bytes, 1 KiB blocks, one core): the unrolled JS loop 65 ms
 * (~1.6 GB/s), this 14 ms with the copy in; a writer indexing 100 MiB (weak + xxh64) went from
 * 90 to 45 ms. Block sizes must be multiples of 16; `blockWeakSums` reports others as not done.
 * No JS fallback is needed for the rest: WebAssembly SIMD is required anyway (roll-kernel.ts).
 *
 * Memory: [0, 16 KiB) the sums out, then the blocks copied in, at most CHUNK bytes a call.
 */

const OUT_AT = 0
const MAX_BLOCKS_PER_CALL = 4096
const DATA_AT = MAX_BLOCKS_PER_CALL * 4
const CHUNK = 1 << 20
const PAGE = 65536

/** i16 lanes, little-endian bytes for v128.const. */
function i16x8 (...lanes: number[]): number[] {
  return lanes.flatMap((v) => [v & 0xff, (v >> 8) & 0xff])
}

/** `sums(count, blockSize)`: weak sums of `count` blocks at DATA_AT into OUT_AT; returns count. */
function sumsFunc (): Parameters<typeof assemble>[0][number] {
  const hsum = (v: string): Instr[] => [
    ['local.get', v], ['i32x4.extract_lane', 0],
    ['local.get', v], ['i32x4.extract_lane', 1], ['i32.add'],
    ['local.get', v], ['i32x4.extract_lane', 2], ['i32.add'],
    ['local.get', v], ['i32x4.extract_lane', 3], ['i32.add'],
  ]
  const zero = new Array(16).fill(0)
  return {
    name: 'sums',
    params: [['$count', 'i32'], ['$n', 'i32']],
    result: 'i32',
    locals: [['$b', 'i32'], ['$p', 'i32'], ['$end', 'i32'], ['$v', 'v128'], ['$a', 'v128'], ['$prefix', 'v128'], ['$w', 'v128']],
    body: [
      ['i32.const', DATA_AT], ['local.set', '$p'],
      ['block', '$done'],
      ['loop', '$blocks'],
      ['local.get', '$b'], ['local.get', '$count'], ['i32.ge_u'], ['br_if', '$done'],
      ['v128.const', zero], ['local.set', '$a'],
      ['v128.const', zero], ['local.set', '$prefix'],
      ['v128.const', zero], ['local.set', '$w'],
      ['local.get', '$p'], ['local.get', '$n'], ['i32.add'], ['local.set', '$end'],
      ['loop', '$steps'],
      ['local.get', '$p'], ['v128.load', 0], ['local.set', '$v'],
      // P += A (the prefix sums), then A += S of this step
      ['local.get', '$prefix'], ['local.get', '$a'], ['i32x4.add'], ['local.set', '$prefix'],
      ['local.get', '$a'], ['local.get', '$v'], ['i16x8.extadd_pairwise_i8x16_u'], ['i32x4.extadd_pairwise_i16x8_u'], ['i32x4.add'], ['local.set', '$a'],
      // W += Σ (16 − j)·v[j]
      ['local.get', '$w'],
      ['local.get', '$v'], ['i16x8.extend_low_i8x16_u'], ['v128.const', i16x8(16, 15, 14, 13, 12, 11, 10, 9)], ['i32x4.dot_i16x8_s'], ['i32x4.add'],
      ['local.get', '$v'], ['i16x8.extend_high_i8x16_u'], ['v128.const', i16x8(8, 7, 6, 5, 4, 3, 2, 1)], ['i32x4.dot_i16x8_s'], ['i32x4.add'],
      ['local.set', '$w'],
      ['local.get', '$p'], ['i32.const', 16], ['i32.add'], ['local.tee', '$p'],
      ['local.get', '$end'], ['i32.lt_u'], ['br_if', '$steps'],
      ['end'],
      // out[b] = (s1 & 0xffff) | (16·ΣP + ΣW) << 16
      ['local.get', '$b'], ['i32.const', 2], ['i32.shl'],
      ...hsum('$a'), ['i32.const', 0xffff], ['i32.and'],
      ...hsum('$prefix'), ['i32.const', 4], ['i32.shl'],
      ...hsum('$w'), ['i32.add'], ['i32.const', 16], ['i32.shl'],
      ['i32.or'],
      ['i32.store', OUT_AT],
      ['local.get', '$b'], ['i32.const', 1], ['i32.add'], ['local.set', '$b'],
      ['br', '$blocks'],
      ['end'],
      ['end'],
      ['local.get', '$count'],
    ],
  }
}

let kernel: { sums: (count: number, n: number) => number, bytes: Uint8Array, out: Int32Array } | undefined

function load (): NonNullable<typeof kernel> {
  if (kernel !== undefined) return kernel
  const instance = new WebAssembly.Instance(new WebAssembly.Module(assemble([sumsFunc()], Math.ceil((DATA_AT + CHUNK) / PAGE))))
  const exports = instance.exports as { memory: WebAssembly.Memory, sums: (count: number, n: number) => number }
  kernel = { sums: exports.sums, bytes: new Uint8Array(exports.memory.buffer), out: new Int32Array(exports.memory.buffer, OUT_AT, MAX_BLOCKS_PER_CALL) }
  return kernel
}

/**
 * Writes the weak sums of the `count` blocks of `blockSize` bytes at `data[start…]` into
 * `out[at…]` (as `weakSum`, signed). Returns how many it did: 0 when `blockSize` is not a multiple
 * of 16 (the caller sums those itself).
 */
export function blockWeakSums (data: Uint8Array, start: number, count: number, blockSize: number, out: Int32Array, at: number): number {
  if (blockSize % 16 !== 0 || blockSize > CHUNK || count === 0) return 0
  const k = load()
  const perCall = Math.min(MAX_BLOCKS_PER_CALL, Math.floor(CHUNK / blockSize))
  for (let done = 0; done < count;) {
    const n = Math.min(perCall, count - done)
    const from = start + done * blockSize
    k.bytes.set(data.subarray(from, from + n * blockSize), DATA_AT)
    k.sums(n, blockSize)
    out.set(k.out.subarray(0, n), at + done)
    done += n
  }
  return count
}
