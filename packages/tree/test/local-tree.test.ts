/** LocalTree on real temp folders: what a scan reports, what the stat cache saves, what it cannot be fooled by. */
import t from 'tap'
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LocalTree } from '../src/index.js'

function tree (): string {
  const root = mkdtempSync(join(tmpdir(), 'fsyncd-tree-'))
  mkdirSync(join(root, 'a/b'), { recursive: true })
  writeFileSync(join(root, 'a/b/f.txt'), 'hello')
  writeFileSync(join(root, 'top.txt'), 'top')
  symlinkSync('a/b/f.txt', join(root, 'link'))
  mkdirSync(join(root, '.fsyncd'))
  writeFileSync(join(root, '.fsyncd/state'), 'private')
  return root
}

t.test('a full scan, then only what changed', async (t) => {
  const root = tree()
  const lt = new LocalTree(root, { ignore: (p) => p === '.fsyncd' })
  const first = await lt.scan()
  t.same([...first].sort(), ['a', 'a/b', 'a/b/f.txt', 'link', 'top.txt'], 'everything, minus what is ignored')
  t.match(lt.manifest.get('link'), { kind: 'link', target: 'a/b/f.txt' })
  t.same([...await lt.scan()], [], 'nothing changed: nothing reported')
  writeFileSync(join(root, 'top.txt'), 'TOP')
  renameSync(join(root, 'a/b'), join(root, 'a/c'))
  t.same([...await lt.scan()].sort(), ['a', 'a/b', 'a/b/f.txt', 'a/c', 'a/c/f.txt', 'top.txt'], 'a rewrite and a folder rename')
  rmSync(join(root, 'a'), { recursive: true })
  t.same([...await lt.scan('a')].sort(), ['a', 'a/c', 'a/c/f.txt'], 'a subtree scan reports what went')
  t.equal(lt.manifest.get('a'), undefined)
})

t.test('same size, same mtime, new content: the stamp (ctime, inode) tells', async (t) => {
  const root = tree()
  const lt = new LocalTree(root)
  await lt.scan()
  const before = lt.manifest.get('top.txt')
  const p = join(root, 'top.txt')
  const when = new Date('2001-01-01T00:00:00Z')
  utimesSync(p, when, when)
  await lt.scan()
  writeFileSync(p, 'TOP')
  utimesSync(p, when, when)
  const changed = await lt.scan()
  t.ok(changed.has('top.txt'), 'reported')
  const after = lt.manifest.get('top.txt')
  t.ok(before?.kind === 'file' && after?.kind === 'file' && !before.hash.equals(after.hash), 'and re-hashed')
})

t.test('save writes only when the tree or its stat cache changed since the last save or load', async (t) => {
  const root = tree()
  const state = join(mkdtempSync(join(tmpdir(), 'fsyncd-state-')), 'local')
  const lt = new LocalTree(root, { ignore: (p) => p === '.fsyncd' })
  await lt.scan()
  await lt.save(state)
  rmSync(state)
  await lt.scan()
  await lt.save(state)
  t.notOk(existsSync(state), 'a scan that found nothing new: nothing written')
  utimesSync(join(root, 'top.txt'), new Date(5000), new Date(5000))
  await lt.scan()
  await lt.save(state)
  t.ok(existsSync(state), 'a changed mtime: written')
  const loaded = new LocalTree(root, { ignore: (p) => p === '.fsyncd' })
  await loaded.load(state)
  rmSync(state)
  await loaded.scan()
  await loaded.save(state)
  t.notOk(existsSync(state), 'loaded and unchanged: nothing written')
  await loaded.save(join(state + '-other'))
  t.ok(existsSync(state + '-other'), 'another file is written')
})

t.test('save and load: a restarted scan hashes nothing that did not change', async (t) => {
  const root = tree()
  const state = join(mkdtempSync(join(tmpdir(), 'fsyncd-state-')), 'local')
  const lt = new LocalTree(root, { ignore: (p) => p === '.fsyncd' })
  await lt.scan()
  await lt.save(state)
  const again = new LocalTree(root, { ignore: (p) => p === '.fsyncd' })
  t.equal(await again.load(state), true)
  t.same([...await again.scan()], [], 'loaded view equals the disk')
  t.equal(await new LocalTree('/elsewhere').load(state), false, 'a state of another root is not loaded')
  writeFileSync(state, 'garbage')
  t.equal(await new LocalTree(root).load(state), false, 'garbage is a cold start, not an error')
})
