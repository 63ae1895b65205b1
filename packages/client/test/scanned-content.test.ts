/** ScannedContent: small files' content from the scan, each taken once, only as the version planned, within a budget. */
import t from 'tap'
import { createHash } from 'node:crypto'
import { ScannedContent } from '../src/uploader.js'

const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest()

t.test('taken once, and only as the content planned', async (t) => {
  const s = new ScannedContent()
  const a = Buffer.from('a')
  const b = Buffer.from('b')
  s.keep('x', a, sha(a))
  t.equal(s.take('x', sha(b)), undefined, 'another version planned: not this content')
  t.equal(s.take('x', sha(a)), undefined, 'and it is forgotten')
  s.keep('x', a, sha(a))
  s.keep('x', b, sha(b))
  t.same(s.take('x', sha(b)), b, 'the latest kept')
  t.equal(s.take('x', sha(b)), undefined, 'taken once')
})

t.test('files past 64 KiB and content past the budget are not kept', async (t) => {
  const s = new ScannedContent()
  const big = Buffer.alloc(64 * 1024 + 1)
  s.keep('big', big, sha(big))
  t.equal(s.take('big', sha(big)), undefined, 'too big to travel inline')
  const chunk = Buffer.alloc(64 * 1024, 7)
  const h = sha(chunk)
  for (let i = 0; i < 600; i++) s.keep(`f${i}`, chunk, h) // 37.5 MiB offered, 32 MiB kept
  let kept = 0
  for (let i = 0; i < 600; i++) if (s.take(`f${i}`, h) !== undefined) kept++
  t.equal(kept, 512, 'up to 32 MiB')
})
