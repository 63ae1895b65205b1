import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { IncomingFile } from '../src/incoming-file.js'

const openFds = (): number => readdirSync('/proc/self/fd').length

t.test('an upload keeps a few bases open, however many its copies name', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fsyncd-incoming-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const bases = new Map<string, string>()
  for (let i = 0; i < 40; i++) {
    const path = join(dir, `base-${i}`)
    writeFileSync(path, `base ${i}\n`)
    bases.set(Buffer.alloc(32, i).toString('hex'), path)
  }
  const before = openFds()
  const file = IncomingFile.create(join(dir, 'tmp'), async (hash) => bases.get(hash.toString('hex')), 1 << 20)
  let expected = ''
  for (let i = 0; i < 40; i++) {
    await file.copy(Buffer.alloc(32, i), 0, 2) // "ba" of each base, then of the first again
    expected += 'ba'
    if (i % 10 === 9) {
      await file.copy(Buffer.alloc(32, 0), 5, 1)
      expected += '0'
    }
  }
  const during = openFds() - before
  t.ok(during <= 1 + 8, `${during} descriptors open for the upload and its bases (at most 1 + 8)`)
  t.equal(readFileSync(join(dir, 'tmp'), 'utf8'), expected, 'every copy was appended, from the right base, a closed one opened again')
  file.discard()
  t.equal(openFds(), before, 'all closed when the upload is discarded')
})

t.test('a base replaced by a symlink or a FIFO is missing: not followed, not waited on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fsyncd-incoming-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'outside'), 'secret outside the tree\n')
  symlinkSync(join(dir, 'outside'), join(dir, 'link'))
  execFileSync('mkfifo', [join(dir, 'fifo')])
  const bases = new Map([[Buffer.alloc(32, 1).toString('hex'), join(dir, 'link')], [Buffer.alloc(32, 2).toString('hex'), join(dir, 'fifo')]])
  const before = openFds()
  const file = IncomingFile.create(join(dir, 'tmp'), async (hash) => bases.get(hash.toString('hex')), 1 << 20)
  await t.rejects(file.copy(Buffer.alloc(32, 1), 0, 6), { code: 'MISSING' }, 'a symlink')
  await t.rejects(file.copy(Buffer.alloc(32, 2), 0, 6), { code: 'MISSING' }, 'a FIFO (an open that waits for a writer would hang here)')
  t.equal(readFileSync(join(dir, 'tmp'), 'utf8'), '', 'nothing was copied')
  file.discard()
  t.equal(openFds(), before, 'nothing left open')
})

t.test('writes and copies across many copy chunks land whole and in order', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fsyncd-incoming-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const base = randomBytes(5 * 1024 * 1024 + 123)
  writeFileSync(join(dir, 'base'), base)
  const before = openFds()
  const file = IncomingFile.create(join(dir, 'tmp'), async () => join(dir, 'base'), 64 << 20)
  const parts: Buffer[] = []
  for (const size of [300_000, 17, 1 << 20, 262_144, 5]) {
    const data = randomBytes(size)
    file.write(data)
    parts.push(data)
  }
  // Six 1 MiB chunks from an odd offset: the copy buffer is reused for each.
  await file.copy(Buffer.alloc(32), 1001, base.length - 2000)
  parts.push(base.subarray(1001, base.length - 999))
  file.write(parts[0] as Buffer)
  parts.push(parts[0] as Buffer)
  const expected = Buffer.concat(parts)
  t.equal(file.size, expected.length, 'the size counts every byte')
  t.same(file.digest(), createHash('sha256').update(expected).digest(), 'the hash covers the bytes in order')
  await file.seal(0o644, Date.now())
  t.ok(readFileSync(join(dir, 'tmp')).equals(expected), 'the file holds exactly those bytes once sealed')
  file.close() // under 8 MiB: no write-back runs, so the close is at once
  t.equal(openFds(), before, 'nothing left open')
})
