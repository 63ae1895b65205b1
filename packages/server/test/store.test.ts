/**
 * Store: temp files beside their final names. A start sweeps exactly the ones a crash left
 * (its own name format, files only), and never indexes anything so named.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { TEMP_NAME_PREFIX } from '@fsyncd/protocol'
import { Store } from '../src/index.js'

t.test('a start sweeps the temp files a crash left beside their final names, and only those', async (t) => {
  const dest = mkdtempSync(join(tmpdir(), 'fsyncd-store-'))
  t.teardown(() => rmSync(dest, { recursive: true, force: true }))
  const put = (p: string, data = 'x'): void => {
    mkdirSync(join(dest, p, '..'), { recursive: true })
    writeFileSync(join(dest, p), data)
  }
  put('a/keep.txt')
  put(`${TEMP_NAME_PREFIX}0123456789abcdef-0`) // ours, at the root
  put(`a/${TEMP_NAME_PREFIX}0123456789abcdef-1z`) // ours, in a folder
  put(`a/${TEMP_NAME_PREFIX}notours`) // reserved, not in our format
  put(`b/${TEMP_NAME_PREFIX}0123456789abcdef-2/inside.txt`) // a folder so named
  utimesSync(join(dest, 'a'), 1e9, 1e9)

  const store = await Store.open(dest)
  t.teardown(() => store.close())
  t.notOk(existsSync(join(dest, `${TEMP_NAME_PREFIX}0123456789abcdef-0`)), 'the root\'s temp file is swept')
  t.notOk(existsSync(join(dest, `a/${TEMP_NAME_PREFIX}0123456789abcdef-1z`)), 'a folder\'s temp file is swept')
  t.ok(existsSync(join(dest, `a/${TEMP_NAME_PREFIX}notours`)), 'a reserved name in another format is left alone')
  t.ok(existsSync(join(dest, `b/${TEMP_NAME_PREFIX}0123456789abcdef-2/inside.txt`)), 'a folder so named is left alone, with its content')
  t.equal(statSync(join(dest, 'a')).mtimeMs, 1e12, 'the folder\'s mtime, which the sweep moved, is put back')
  t.same([...store.manifest.entries()].map(([p]) => p).sort(), ['a', 'a/keep.txt', 'b'], 'nothing so named is in the index')
})

t.test('a move onto itself changes nothing; one where a side holds the other is refused before anything changes', async (t) => {
  const dest = mkdtempSync(join(tmpdir(), 'fsyncd-store-'))
  t.teardown(() => rmSync(dest, { recursive: true, force: true }))
  mkdirSync(join(dest, 'a/b'), { recursive: true })
  writeFileSync(join(dest, 'a/b/f.txt'), 'f')
  writeFileSync(join(dest, 'x'), 'x')
  const store = await Store.open(dest)
  t.teardown(() => store.close())

  await store.move('x', 'x')
  await store.flush()
  t.ok(existsSync(join(dest, 'x')), 'x → x: the file is there')
  t.ok(store.manifest.has('x'), 'and still in the index')

  await t.rejects(store.move('a/b', 'a'), { code: 'BAD_PATH' }, 'a/b → a is refused')
  await t.rejects(store.move('a', 'a/b/c'), { code: 'BAD_PATH' }, 'a → a/b/c is refused')
  await store.flush()
  t.ok(existsSync(join(dest, 'a/b/f.txt')), 'and a, a/b and its file are all still there')
  t.same([...store.manifest.entries()].map(([p]) => p).sort(), ['a', 'a/b', 'a/b/f.txt', 'x'], 'as the index says')
})

t.test('a file installed where a folder stands replaces the folder; a symlink does too', async (t) => {
  const dest = mkdtempSync(join(tmpdir(), 'fsyncd-store-'))
  t.teardown(() => rmSync(dest, { recursive: true, force: true }))
  mkdirSync(join(dest, 'a/inner'), { recursive: true })
  writeFileSync(join(dest, 'a/inner/f.txt'), 'f')
  mkdirSync(join(dest, 'l'))
  const store = await Store.open(dest)
  t.teardown(() => store.close())

  const data = Buffer.from('now a file')
  const hash = createHash('sha256').update(data).digest()
  const [done] = await store.receiveWholeFiles([{ path: 'a', meta: { hash, size: data.length, mode: 0o640, mtime: 1e12 }, data }])
  await store.symlink('l', 'a', 1e12)
  await store.flush()
  await done
  t.equal(readFileSync(join(dest, 'a'), 'utf8'), 'now a file', 'the folder and what it held gave way to the file')
  t.equal(statSync(join(dest, 'a')).mode & 0o777, 0o640)
  t.equal(readlinkSync(join(dest, 'l')), 'a', 'the empty folder gave way to the link')
  t.same([...store.manifest.entries()].map(([p, e]) => [p, e.kind]).sort(), [['a', 'file'], ['l', 'link']], 'as the index says')
  const a = store.manifest.get('a')
  t.same(a?.kind === 'file' ? [a.size, a.mode, a.mtime, a.hash.equals(hash)] : undefined, [data.length, 0o640, 1e12, true], 'recorded with its size, mode, mtime and hash')
})
