import t from 'tap'
import { applyDelta, checkCopy, type CopyOp, type DeltaOp, PatchChecker } from '../src/index.js'

const copy = (fileRef: number, offset: number, length: number): CopyOp => ({ type: 'copy', fileRef, offset, length })

t.test('checkCopy accepts copies inside the source', async (t) => {
  t.doesNotThrow(() => checkCopy(copy(0, 0, 10), 10))
  t.doesNotThrow(() => checkCopy(copy(0xffffffff, 9, 1), 10))
  t.doesNotThrow(() => checkCopy(copy(1, 2 ** 52, 2 ** 52), 2 ** 53))
})

t.test('checkCopy rejects out-of-range, negative, empty, fractional and overflowing copies', async (t) => {
  const rejected: [string, CopyOp, number][] = [
    ['past the end', copy(1, 5, 6), 10],
    ['offset past the end', copy(1, 11, 1), 10],
    ['from an empty file', copy(1, 0, 1), 0],
    ['negative offset', copy(1, -1, 2), 10],
    ['negative length', copy(1, 2, -1), 10],
    ['zero length', copy(1, 0, 0), 10],
    ['fractional offset', copy(1, 0.5, 1), 10],
    ['fractional length', copy(1, 0, 1.5), 10],
    ['NaN offset', copy(1, NaN, 1), 10],
    ['infinite length', copy(1, 0, Infinity), Number.MAX_SAFE_INTEGER],
    ['unsafe offset', copy(1, 2 ** 53, 1), 2 ** 60],
    ['end past the source by one, where the sum rounds down to its length', copy(1, 2 ** 53 - 1, 6), 2 ** 53 + 4],
    ['end past 2^53', copy(1, Number.MAX_SAFE_INTEGER - 1, 3), Number.MAX_SAFE_INTEGER],
    ['negative fileRef', copy(-1, 0, 1), 10],
    ['fileRef past u32', copy(2 ** 32, 0, 1), 10],
    ['fileRef not a number', { type: 'copy', fileRef: '1', offset: 0, length: 1 } as unknown as CopyOp, 10],
  ]
  for (const [why, op, sourceLength] of rejected) {
    t.throws(() => checkCopy(op, sourceLength), { name: 'DeltaError', code: 'BAD_COPY' }, why)
  }
})

t.test('PatchChecker checks sources, literals and the target length', async (t) => {
  const lengths = new Map([[1, 100], [2, 0]])
  const checker = new PatchChecker({ sourceLength: (ref) => lengths.get(ref), maxTargetLength: 150, maxLiteralLength: 20 })
  checker.check(copy(1, 0, 100))
  checker.check({ type: 'literal', data: new Uint8Array(20) })
  t.equal(checker.targetLength, 120)
  t.throws(() => checker.check(copy(3, 0, 1)), { code: 'UNKNOWN_SOURCE' })
  t.throws(() => checker.check(copy(2, 0, 1)), { code: 'BAD_COPY' })
  t.throws(() => checker.check({ type: 'literal', data: new Uint8Array(0) }), { code: 'BAD_LITERAL' })
  t.throws(() => checker.check({ type: 'literal', data: new Uint8Array(21) }), { code: 'BAD_LITERAL' })
  t.throws(() => checker.check({ type: 'literal', data: [1, 2] } as unknown as DeltaOp), { code: 'BAD_LITERAL' })
  t.throws(() => checker.check({ type: 'move' } as unknown as DeltaOp), { code: 'BAD_COPY' })
  t.throws(() => checker.check(copy(1, 0, 31)), { code: 'TARGET_TOO_LARGE' })
  t.equal(checker.targetLength, 120, 'rejected ops are not counted')
  checker.check(copy(1, 0, 30))
  t.equal(checker.targetLength, 150)
})

t.test('applyDelta rebuilds, and refuses a short read', async (t) => {
  const source = Uint8Array.of(10, 11, 12, 13, 14)
  const read = (_: number, offset: number, length: number): Uint8Array => source.subarray(offset, offset + length)
  const ops: DeltaOp[] = [copy(1, 3, 2), { type: 'literal', data: Uint8Array.of(99) }, copy(1, 0, 2)]
  t.same([...applyDelta(ops, read)], [13, 14, 99, 10, 11])
  t.same(applyDelta([], read).length, 0)
  t.throws(() => applyDelta([copy(1, 4, 2)], read), { code: 'BAD_COPY' })
  t.throws(() => applyDelta([copy(1, -1, 2)], read), { code: 'BAD_COPY' })
})
