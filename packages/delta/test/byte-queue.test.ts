import t from 'tap'
import { ByteQueue } from '../src/byte-queue.js'
import { Prng } from './helpers/prng.js'

/**
 * Random pushes (of a buffer the test scribbles over afterwards) and shifts against a plain
 * record of the bytes. Small segments, and big ones that pushes fill only partly (a new segment
 * is sized to its push, 64 KiB at least).
 */
t.test('ByteQueue hands out what was pushed, in order, whatever the pieces and segment size', async (t) => {
  let checked = 0
  const rounds = 300
  for (let round = 0; round < rounds; round++) {
    const r = new Prng(9000 + round)
    const big = round % 3 === 0
    const q = new ByteQueue(big ? r.between(70_000, 300_000) : r.between(1, 64))
    const most = big ? 200_000 : 200
    const pushed: Buffer[] = []
    const got: Buffer[] = []
    const scratch = new Uint8Array(most)
    for (let step = 0; step < 60; step++) {
      if (r.below(2) === 0) {
        const bytes = scratch.subarray(0, r.below(most))
        bytes.set(r.bytes(bytes.length))
        q.push(bytes)
        pushed.push(Buffer.from(bytes))
        bytes.fill(0xa5) // the queue copied them
      } else {
        q.shift(r.below(q.length + 1), (piece) => { got.push(Buffer.from(piece)) })
      }
    }
    q.shift(q.length, (piece) => { got.push(Buffer.from(piece)) })
    const want = Buffer.concat(pushed)
    const out = Buffer.concat(got)
    if (q.length !== 0 || Buffer.compare(out, want) !== 0) {
      t.fail(`round ${round}: ${out.length} bytes out of ${want.length} pushed, or not the same`)
      continue
    }
    checked++
  }
  t.equal(checked, rounds, 'every round gave back its bytes')
})

t.test('ByteQueue: shifting without a callback drops; a shift past the end, or of a fraction, is refused', async (t) => {
  const q = new ByteQueue(4)
  q.push(Uint8Array.of(1, 2, 3, 4, 5, 6))
  q.shift(5)
  const rest: number[] = []
  q.shift(1, (p) => { rest.push(...p) })
  t.same(rest, [6])
  t.throws(() => { q.shift(1) }, RangeError)
  q.push(Uint8Array.of(7, 8))
  t.throws(() => { q.shift(1.5) }, RangeError)
  t.equal(q.length, 2, 'a refused shift takes nothing')
  t.throws(() => new ByteQueue(0), RangeError)
})
