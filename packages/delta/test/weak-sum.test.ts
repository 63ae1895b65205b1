import t from 'tap'
import { RollingSum, weakSum } from '../src/index.js'
import { blockWeakSums } from '../src/block-sums-kernel.js'
import { Prng } from './helpers/prng.js'

t.test('weakSum matches the definition on a known vector', async (t) => {
  // s1 = 1 + 2 + 3 = 6; s2 = 3·1 + 2·2 + 1·3 = 10
  t.equal(weakSum(Uint8Array.of(1, 2, 3), 0, 3), 6 | (10 << 16))
  t.equal(weakSum(Uint8Array.of(9, 1, 2, 3, 9), 1, 4), 6 | (10 << 16), 'honours start and end')
  t.equal(weakSum(new Uint8Array(0), 0, 0), 0)
})

t.test('weakSum reduces each half mod 2^16 and is unsigned', async (t) => {
  const ones = new Uint8Array(100000).fill(255)
  const n = ones.length
  const s1 = (255 * n) % 65536
  const s2 = (255 * (n * (n + 1) / 2)) % 65536
  const digest = weakSum(ones, 0, n)
  t.equal(digest, (s1 + s2 * 65536))
  t.ok(digest >= 0 && digest < 2 ** 32)
})

t.test('weakSum equals the byte-by-byte definition at any offset and length', async (t) => {
  const prng = new Prng(3)
  const data = prng.bytes(10000)
  let bad = 0
  for (let i = 0; i < 2000; i++) {
    const start = prng.below(data.length)
    const end = start + prng.below(data.length - start + 1)
    let s1 = 0
    let s2 = 0
    for (let j = start; j < end; j++) {
      s1 = (s1 + data[j]!) % 65536
      s2 = (s2 + s1) % 65536
    }
    if (weakSum(data, start, end) !== s1 + s2 * 65536) bad++
  }
  t.equal(bad, 0)
})

t.test('a rolled digest equals weakSum recomputed at every offset', async (t) => {
  const prng = new Prng(42)
  const data = prng.bytes(20000)
  // and a run of 0xff, where the sums overflow fastest
  data.fill(255, 5000, 9000)
  for (const window of [1, 2, 7, 64, 1000, 4096]) {
    const rolling = new RollingSum()
    rolling.init(data, 0, window)
    t.equal(rolling.length, window)
    let bad = -1
    for (let i = 0; ; i++) {
      if (rolling.digest() !== weakSum(data, i, i + window)) {
        bad = i
        break
      }
      if (i + window >= data.length) break
      rolling.roll(data[i]!, data[i + window]!)
    }
    t.equal(bad, -1, `window ${window}: first offset where rolling and recomputing differ`)
  }
})

t.test('init starts over', async (t) => {
  const data = new Prng(7).bytes(300)
  const rolling = new RollingSum()
  rolling.init(data, 0, 100)
  rolling.roll(data[0]!, data[100]!)
  rolling.init(data, 50, 150)
  t.equal(rolling.digest(), weakSum(data, 50, 150))
})

t.test('blockWeakSums (the SIMD kernel) equals weakSum of every block', async (t) => {
  const prng = new Prng(17)
  // Block sizes it takes (multiples of 16, up to its 1 MiB chunk), counts across its per-call
  // limits (4096 blocks, 1 MiB), any start; all-255 bytes for the widest lane sums.
  const cases: Array<[number, number]> = [[16, 1], [16, 5000], [48, 333], [64, 97], [1024, 1], [1024, 2500], [4096, 300], [65536, 20], [1 << 20, 2]]
  for (const [B, count] of cases) {
    for (const fill of [undefined, 255]) {
      const start = prng.below(64)
      const data = fill === undefined ? prng.bytes(start + B * count + 7) : new Uint8Array(start + B * count).fill(fill)
      const out = new Int32Array(count + 3).fill(-1)
      t.equal(blockWeakSums(data, start, count, B, out, 2), count, `${count} blocks of ${B}`)
      let bad = 0
      for (let i = 0; i < count; i++) if (out[2 + i] !== (weakSum(data, start + i * B, start + (i + 1) * B) | 0)) bad++
      t.equal(bad, 0, `${count} blocks of ${B}${fill === undefined ? '' : ` of ${fill}`}: every sum equal`)
      t.same([out[0], out[1], out[count + 2]], [-1, -1, -1], 'nothing written outside')
    }
  }
  t.equal(blockWeakSums(new Uint8Array(100), 0, 2, 40, new Int32Array(2), 0), 0, 'a block size not a multiple of 16: not done')
  t.equal(blockWeakSums(new Uint8Array(0), 0, 0, 16, new Int32Array(0), 0), 0)
})
