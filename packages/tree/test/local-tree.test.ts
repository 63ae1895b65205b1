/** LocalTree on real temp folders: what a scan reports, what the stat cache saves, what it cannot be fooled by. */
import t from 'tap'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Entry } from '@fsyncd/protocol'
import { isHashPending, LocalTree, PENDING_HASH } from '../src/index.js'

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

t.test('deferHashFrom: a big file changed in place waits for its reader to hash it', async (t) => {
  const root = tree()
  const big = join(root, 'big.bin')
  writeFileSync(big, Buffer.alloc(4096, 1))
  const lt = new LocalTree(root)
  const defer = { deferHashFrom: 4096 }
  await lt.scan('', defer)
  t.equal(lt.manifest.get('big.bin')?.kind === 'file' && isHashPending(lt.manifest.get('big.bin') as Entry), false, 'a file seen for the first time is hashed')

  writeFileSync(big, Buffer.alloc(4096, 2))
  writeFileSync(join(root, 'top.txt'), 'small change')
  t.same([...await lt.scan('', defer)].sort(), ['big.bin', 'top.txt'], 'both reported changed')
  const pending = lt.manifest.get('big.bin') as Entry
  t.ok(isHashPending(pending), 'the big one is pending')
  t.match(pending, { kind: 'file', size: 4096, hash: PENDING_HASH })
  t.notOk(isHashPending(lt.manifest.get('top.txt') as Entry), 'the small one is hashed')
  t.same([...await lt.scan('', defer)], [], 'still pending, and not reported again')

  const state = join(root, '.state')
  await lt.save(state)
  const restarted = new LocalTree(root)
  await restarted.load(state)
  t.equal(restarted.manifest.get('big.bin'), undefined, 'a pending entry is not saved')
  t.notOk(isHashPending((await restarted.scan('', defer), restarted.manifest.get('big.bin')) as Entry), 'and is hashed by the next start, as a new file')

  writeFileSync(big, Buffer.alloc(4096, 3))
  utimesSync(big, new Date('2001-01-01T00:00:00Z'), new Date('2001-01-01T00:00:00Z'))
  const unseen = statSync(big)
  const third = createHash('sha256').update(Buffer.alloc(4096, 3)).digest()
  t.equal(lt.settleHash('big.bin', unseen, third), false, 'a hash of a version the scan did not see is refused')
  t.ok(isHashPending(lt.manifest.get('big.bin') as Entry))
  await lt.scan('', defer)
  const now = statSync(big)
  t.equal(lt.settleHash('big.bin', now, third), true)
  t.same((lt.manifest.get('big.bin') as { hash: Buffer }).hash, third, 'settled')
  t.equal(lt.settleHash('big.bin', now, Buffer.alloc(32)), false, 'a settled entry stays as it is')
  t.same([...await lt.scan('', defer)], [], 'settled: nothing to rescan')
})

t.test('hashInScan: a file that would not hold still for its reader is hashed by the scan until it does', async (t) => {
  const root = tree()
  const big = join(root, 'log.bin')
  writeFileSync(big, Buffer.alloc(4096, 1))
  const lt = new LocalTree(root)
  const defer = { deferHashFrom: 4096 }
  await lt.scan('', defer)
  lt.hashInScan('log.bin')
  writeFileSync(big, Buffer.alloc(8192, 2))
  await lt.scan('', defer)
  t.same((lt.manifest.get('log.bin') as { hash: Buffer }).hash, createHash('sha256').update(Buffer.alloc(8192, 2)).digest(), 'hashed by the scan, not left pending')
  writeFileSync(big, Buffer.alloc(12_288, 3))
  await lt.scan('', defer)
  t.notOk(isHashPending(lt.manifest.get('log.bin') as Entry), 'again, while it keeps changing')
  t.same([...await lt.scan('', defer)], [], 'a scan that finds it unchanged')
  writeFileSync(big, Buffer.alloc(16_384, 4))
  await lt.scan('', defer)
  t.ok(isHashPending(lt.manifest.get('log.bin') as Entry), 'ends that: the next change is left to its reader again')
})

t.test('stateSum names the state file that holds the tree as it is, and nothing else', async (t) => {
  const root = tree()
  const state = join(mkdtempSync(join(tmpdir(), 'fsyncd-state-')), 'local')
  const lt = new LocalTree(root, { ignore: (p) => p === '.fsyncd' })
  await lt.scan()
  t.equal(lt.stateSum, undefined, 'never saved')
  await lt.save(state)
  const saved = lt.stateSum
  t.ok(saved !== undefined && saved.length === 32, 'saved')
  const loaded = new LocalTree(root, { ignore: (p) => p === '.fsyncd' })
  await loaded.load(state)
  t.same(loaded.stateSum, saved, 'the same file, loaded')
  t.same([...await loaded.scan()], [], 'a scan that changes nothing')
  t.same(loaded.stateSum, saved, 'keeps it')
  writeFileSync(join(root, 'top.txt'), 'changed')
  await loaded.scan()
  t.equal(loaded.stateSum, undefined, 'a change drops it')
  await loaded.save(state)
  t.ok(loaded.stateSum !== undefined && !loaded.stateSum.equals(saved as Buffer), 'a new save names the new file')

  writeFileSync(join(root, 'big.bin'), Buffer.alloc(4096, 1))
  await loaded.scan('', { deferHashFrom: 4096 })
  writeFileSync(join(root, 'big.bin'), Buffer.alloc(4096, 2))
  await loaded.scan('', { deferHashFrom: 4096 })
  t.ok(isHashPending(loaded.manifest.get('big.bin') as Entry))
  await loaded.save(state)
  t.equal(loaded.stateSum, undefined, 'a save that left a pending entry out does not hold the tree')
})

t.test('a scan hands over the content of the new and changed small files it read, as hashed', async (t) => {
  const root = tree()
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const lt = new LocalTree(root, { ignore: (p) => p === '.fsyncd' })
  const seen = new Map<string, string>()
  const onContent = (p: string, data: Buffer, hash: Buffer): void => {
    t.same(hash, createHash('sha256').update(data).digest(), `${p}: the content is what was hashed`)
    seen.set(p, data.toString())
  }
  await lt.scan('', { onContent })
  t.same([...seen].sort(), [['a/b/f.txt', 'hello'], ['top.txt', 'top']], 'every file is new: all of them')
  seen.clear()
  writeFileSync(join(root, 'top.txt'), 'TOP')
  writeFileSync(join(root, 'a/b/f.txt'), 'hello') // rewritten, same content
  writeFileSync(join(root, 'big.bin'), Buffer.alloc(300 * 1024, 1))
  await lt.scan('', { onContent })
  t.same([...seen].sort(), [['top.txt', 'TOP']], 'then only changed content: not a rewrite of the same bytes, not a file too big to read whole')
})
