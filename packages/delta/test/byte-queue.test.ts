import t from 'tap'
import { ByteQueue } from '../src/byte-queue.js'
import { Prng } from './helpers/prng.js'

t.test('ByteQueue hands out what was pushed, in order, whatever the pieces and segment size', async (t) => {
  let checked = 0
  for (let round = 0; round < 300; round++) {
    const r = new Prng(9000 + round)
    const q = new ByteQueue(r.between(1, 64))
    const want: number[] = []
    const got: number[] = []
    const scratch = new Uint8Array(200)
    for (let step = 0; step < 60; step++) {
      if (r.below(2) === 0) {
        const bytes = scratch.subarray(0, r.below(200))
        bytes.set(r.bytes(bytes.length))
        q.push(bytes)
        want.push(...bytes)
        bytes.fill(0) // the queue copied them
      } else {
        const n = r.below(q.length + 1)
        q.shift(n, (piece) => { got.push(...piece) })
      }
      if (q.length !== want.length - got.length) break
    }
    q.shift(q.length, (piece) => { got.push(...piece) })
    if (q.length !== 0 || Buffer.compare(Buffer.from(got), Buffer.from(want)) !== 0) {
      t.fail(`round ${round}: ${got.length} bytes out of ${want.length} pushed, or not the same`)
      continue
    }
    checked++
  }
  t.equal(checked, 300, 'every round gave back its bytes')
})

t.test('ByteQueue: shifting without a callback drops; a shift past the end is refused', async (t) => {
  const q = new ByteQueue(4)
  q.push(Uint8Array.of(1, 2, 3, 4, 5, 6))
  q.shift(5)
  const rest: number[] = []
  q.shift(1, (p) => { rest.push(...p) })
  t.same(rest, [6])
  t.throws(() => { q.shift(1) }, RangeError)
  t.throws(() => new ByteQueue(0), RangeError)
})
