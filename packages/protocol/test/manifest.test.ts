import { createHash } from 'node:crypto'
import t from 'tap'
import { type Entry, Manifest, sameEntry } from '../src/index.js'
import { Prng } from '@fsyncd/testkit'

/**
 * The Manifest both sides build: its digest (order-free, sensitive to every covered field, blind to
 * folder mtimes, in step with sameEntry) and its tree operations, with the prefix-sibling trap
 * (`a` vs `ab`, `a.txt`) in every one.
 */

const hash = (n: number): Buffer => createHash('sha256').update(`content ${n}`).digest()
const file = (n: number, over: Partial<Extract<Entry, { kind: 'file' }>> = {}): Entry => ({ kind: 'file', mode: 0o644, mtime: 1_700_000_000_000 + n, size: 100 + n, hash: hash(n), ...over })
const dir = (over: Partial<Extract<Entry, { kind: 'dir' }>> = {}): Entry => ({ kind: 'dir', mode: 0o755, mtime: 1_600_000_000_000, ...over })
const link = (target: string, over: Partial<Extract<Entry, { kind: 'link' }>> = {}): Entry => ({ kind: 'link', mtime: 5, target, ...over })

function manifestOf (entries: Array<[string, Entry]>): Manifest {
  const m = new Manifest()
  for (const [p, e] of entries) m.set(p, e)
  return m
}

function randomEntries (r: Prng, count: number): Array<[string, Entry]> {
  const out = new Map<string, Entry>()
  const names = ['a', 'ab', 'a.txt', 'b', 'é', 'x y', '.h']
  while (out.size < count) {
    const depth = r.between(1, 4)
    const p = Array.from({ length: depth }, () => r.pick(names) + (r.chance(0.5) ? String(r.below(20)) : '')).join('/')
    const k = r.below(3)
    out.set(p, k === 0 ? file(r.below(50), { mode: r.pick([0o644, 0o600, 0o755]) }) : k === 1 ? dir({ mtime: r.u32() }) : link(r.pick(['t', '../t', '/abs', 'a b'])))
  }
  return [...out]
}

function shuffled<T> (r: Prng, items: readonly T[]): T[] {
  const a = [...items]
  for (let i = a.length - 1; i > 0; i--) {
    const j = r.below(i + 1)
    const tmp = a[i] as T
    a[i] = a[j] as T
    a[j] = tmp
  }
  return a
}

const hex = (b: Buffer): string => b.toString('hex')

t.test('the digest of an empty manifest is SHA-256 of nothing', async (t) => {
  t.equal(hex(new Manifest().digest()), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
})

t.test('the digest follows the format both sides must compute (a pinned vector)', async (t) => {
  const m = manifestOf([['b', link('t')], ['a/f', file(1)], ['a', dir()]])
  const f = file(1) as Extract<Entry, { kind: 'file' }>
  const expected = createHash('sha256')
    .update('a\0d\0' + String(0o755) + '\0\n')
    .update(`a/f\0f\0${0o644}\0${f.size}\0${f.mtime}\0`).update(f.hash).update('\n')
    .update('b\0l\0t\0\n')
    .digest()
  t.equal(hex(m.digest()), hex(expected), 'sorted paths; path, kind, mode, size, mtime, hash / target, NUL-separated, one line each')
})

t.test('the digest does not depend on insertion order, overwrites or deletions along the way', async (t) => {
  const r = new Prng(21)
  const entries = randomEntries(r, 300)
  const want = hex(manifestOf(entries).digest())
  for (let round = 0; round < 20; round++) {
    const m = new Manifest()
    // Noise first: stale versions and extra paths that are later overwritten or deleted.
    for (const [p] of shuffled(r, entries).slice(0, 50)) m.set(p, file(999))
    m.set('extra/path', dir())
    for (const [p, e] of shuffled(r, entries)) m.set(p, e)
    m.delete('extra/path')
    t.equal(hex(m.digest()), want, `round ${round}: same entries, another history, same digest`)
  }
  t.equal(hex(manifestOf(entries).clone().digest()), want, 'a clone has the same digest')
  t.equal(manifestOf(entries).size, entries.length)
})

t.test('the digest changes when any covered field changes, and not for a folder or link mtime', async (t) => {
  const base: Array<[string, Entry]> = [['a', dir()], ['a/f', file(1)], ['a/l', link('f')], ['ab', file(2)]]
  const d0 = hex(manifestOf(base).digest())
  const variants: Array<[string, string, Entry | undefined, boolean]> = [
    ['file mode', 'a/f', file(1, { mode: 0o600 }), true],
    ['file mtime', 'a/f', file(1, { mtime: 1 }), true],
    ['file mtime by 1 ms', 'a/f', file(1, { mtime: (file(1) as { mtime: number }).mtime + 1 }), true],
    ['file size', 'a/f', file(1, { size: 0 }), true],
    ['file hash', 'a/f', file(1, { hash: hash(3) }), true],
    ['file hash, one bit', 'a/f', file(1, { hash: (() => { const h = Buffer.from(hash(1)); h[31] = (h[31] as number) ^ 1; return h })() }), true],
    ['link target', 'a/l', link('g'), true],
    ['link target, trailing space', 'a/l', link('f '), true],
    ['dir mode', 'a', dir({ mode: 0o700 }), true],
    ['kind: file → dir', 'a/f', dir(), true],
    ['kind: file → link', 'a/f', link('x'), true],
    ['kind: dir → file', 'a', file(1), true],
    ['a path removed', 'ab', undefined, true],
    ['dir mtime', 'a', dir({ mtime: 42 }), false],
    ['link mtime (sameEntry ignores it too)', 'a/l', link('f', { mtime: 99 }), false],
  ]
  for (const [name, p, e, changes] of variants) {
    const m = manifestOf(base)
    if (e === undefined) m.delete(p)
    else m.set(p, e)
    t.equal(hex(m.digest()) !== d0, changes, `${name}: digest ${changes ? 'changes' : 'unchanged'}`)
  }
  const renamed = manifestOf(base.map(([p, e]) => [p === 'ab' ? 'ac' : p, e]))
  t.not(hex(renamed.digest()), d0, 'a renamed path changes the digest')
  const added = manifestOf([...base, ['b', dir()]])
  t.not(hex(added.digest()), d0, 'an added path changes the digest')
})

t.test('the digest agrees with sameEntry for seeded pairs of entries', async (t) => {
  const r = new Prng(22)
  const pool: Entry[] = [
    file(1), file(1, { mtime: 0 }), file(1, { mode: 0 }), file(1, { size: 0 }), file(2), dir(), dir({ mtime: 0 }), dir({ mode: 0o700 }),
    link('t'), link('t', { mtime: 0 }), link('u'),
  ]
  let bad = 0
  for (let i = 0; i < 400; i++) {
    const a = r.pick(pool)
    const b = r.pick(pool)
    const rest = randomEntries(r, 5).filter(([p]) => p !== 'x')
    const same = hex(manifestOf([...rest, ['x', a]]).digest()) === hex(manifestOf([...rest, ['x', b]]).digest())
    if (same !== sameEntry(a, b) && bad++ < 5) t.fail(`${JSON.stringify(a)} vs ${JSON.stringify(b)}: digest ${same ? 'equal' : 'differs'}, sameEntry ${String(sameEntry(a, b))}`)
  }
  t.equal(bad, 0, '400 pairs: equal digests exactly when sameEntry')
})

t.test('entries that run into each other in the digest text still differ', async (t) => {
  // Paths and link targets may hold newlines; the fields around them must keep digests apart.
  const pairs: Array<[string, Array<[string, Entry]>, Array<[string, Entry]>]> = [
    ['a newline in a link target vs two entries', [['a', link('x\nb')]], [['a', link('x')], ['b', link('')]]],
    ['a newline in a path', [['a\nb', dir()]], [['a', dir()], ['b', dir()]]],
    ['mode digits vs size digits', [['f', file(1, { mode: 1, size: 23 })]], [['f', file(1, { mode: 12, size: 3 })]]],
    ['size digits vs mtime digits', [['f', file(1, { size: 1, mtime: 23 })]], [['f', file(1, { size: 12, mtime: 3 })]]],
    ['link target vs path', [['a', link('b')]], [['ab', link('')]]],
  ]
  for (const [name, a, b] of pairs) t.not(hex(manifestOf(a).digest()), hex(manifestOf(b).digest()), name)
})

const tree = (): Manifest => manifestOf([
  ['a', dir()], ['a/x', file(1)], ['a/y', dir()], ['a/y/z', file(2)], ['a/y/l', link('../x')],
  ['ab', dir()], ['ab/c', file(1)], ['a.txt', file(3)], ['a-b', file(4)], ['b', file(5)],
])
const sorted = (it: Iterable<string>): string[] => [...it].sort()

t.test('subtree: a folder and everything below it, never a prefix sibling', async (t) => {
  const m = tree()
  t.same(sorted(m.subtree('a')), ['a', 'a/x', 'a/y', 'a/y/l', 'a/y/z'])
  t.same(sorted(m.subtree('a/y')), ['a/y', 'a/y/l', 'a/y/z'])
  t.same(sorted(m.subtree('ab')), ['ab', 'ab/c'])
  t.same(sorted(m.subtree('a/x')), ['a/x'], 'a file is its own subtree')
  t.same(m.subtree('nope'), [])
  t.same(m.subtree('a/'), [], 'a non-canonical folder name matches nothing')
  t.equal(m.subtree('').length, m.size, "'' is the whole tree")
})

t.test('deleteTree removes the folder and its contents, not prefix siblings, and keeps the hash index right', async (t) => {
  const m = tree()
  m.deleteTree('a')
  t.same(sorted(m.paths()), ['a-b', 'a.txt', 'ab', 'ab/c', 'b'])
  t.same(sorted(m.pathsWithHash(hash(1)) ?? []), ['ab/c'], 'content 1 is still held by ab/c')
  t.equal(m.hasContent(hash(2)), false, 'content 2 was only in a/y/z')
  t.same(m.pathsWithHash(hash(2)), [])
  m.deleteTree('ab')
  t.equal(m.hasContent(hash(1)), false, 'and content 1 goes with its last path')
  m.deleteTree('nope')
  t.same(sorted(m.paths()), ['a-b', 'a.txt', 'b'], 'deleting a missing tree is a no-op')
  m.deleteTree('')
  t.equal(m.size, 0, "deleteTree('') empties the manifest")
})

t.test('moveTree renames a folder and everything below it, not prefix siblings', async (t) => {
  const m = tree()
  const before = m.digest()
  m.moveTree('a', 'q/r')
  t.same(sorted(m.paths()), ['a-b', 'a.txt', 'ab', 'ab/c', 'b', 'q/r', 'q/r/x', 'q/r/y', 'q/r/y/l', 'q/r/y/z'])
  t.same(m.get('q/r/y/z'), file(2), 'entries move unchanged')
  t.same(sorted(m.pathsWithHash(hash(1)) ?? []), ['ab/c', 'q/r/x'], 'the hash index follows the move')
  t.same(sorted(m.pathsWithHash(hash(2)) ?? []), ['q/r/y/z'])
  t.same([m.countWithHash(hash(1)), m.countWithHash(hash(2)), m.countWithHash(hash(9))], [2, 1, 0], 'countWithHash counts the same paths')
  m.moveTree('q/r', 'a')
  t.equal(hex(m.digest()), hex(before), 'moving back restores the same digest')

  m.moveTree('a/x', 'a/x2')
  t.ok(m.has('a/x2') && !m.has('a/x'), 'a single file moves')
  t.same(sorted(m.pathsWithHash(hash(1)) ?? []), ['a/x2', 'ab/c'])
  m.moveTree('a', 'ab2')
  t.ok(m.has('ab') && m.has('ab/c') && m.has('ab2/y/z') && !m.has('a'), 'moving a to ab2 leaves ab alone')
  const snapshot = hex(m.digest())
  m.moveTree('nope', 'elsewhere')
  t.equal(hex(m.digest()), snapshot, 'moving a missing path is a no-op')
  m.moveTree('b', 'b')
  t.equal(hex(m.digest()), snapshot, 'moving onto itself is a no-op')
})

t.test('the hash index follows set and delete', async (t) => {
  const m = new Manifest()
  m.set('f', file(1))
  m.set('g', file(1))
  m.set('g', file(1))
  t.same(sorted(m.pathsWithHash(hash(1)) ?? []), ['f', 'g'], 'setting the same path twice lists it once')
  m.set('g', file(2))
  t.same(sorted(m.pathsWithHash(hash(1)) ?? []), ['f'], 'overwriting with other content moves the path')
  t.same(sorted(m.pathsWithHash(hash(2)) ?? []), ['g'])
  m.set('f', dir())
  t.equal(m.hasContent(hash(1)), false, 'a file replaced by a folder leaves the index')
  m.set('l', link('g'))
  t.same(m.pathsWithHash(hash(3)), [])
  m.delete('g')
  t.equal(m.hasContent(hash(2)), false)
  t.same(sorted(m.paths()), ['f', 'l'])
  m.delete('nope')
  t.equal(m.size, 2, 'deleting a missing path is a no-op')
})

t.test('the hash index with one, two, then one path again; the version counts every change', async (t) => {
  const m = new Manifest()
  const v0 = m.version
  m.set('a', file(1))
  m.set('b', file(1))
  m.set('c', file(1))
  t.same(sorted(m.pathsWithHash(hash(1))), ['a', 'b', 'c'])
  m.delete('b')
  m.delete('c')
  t.same(m.pathsWithHash(hash(1)), ['a'], 'back to a single path')
  m.delete('a')
  t.notOk(m.hasContent(hash(1)))
  t.equal(m.version, v0 + 6, 'three sets and three deletes')
  m.delete('a')
  t.equal(m.version, v0 + 6, 'a delete of nothing changes nothing')
})

t.test('the digest is kept until the manifest changes', async (t) => {
  const m = tree()
  const before = m.digest()
  t.equal(m.digest(), before, 'the same buffer while nothing changed')
  m.set('a/y/z', file(9))
  const after = m.digest()
  t.not(after.toString('hex'), before.toString('hex'), 'a change gives a new digest')
  t.same(after, manifestOf([...m.entries()]).digest(), 'equal to a fresh computation')
})

t.test('a clone is independent of its original', async (t) => {
  const m = tree()
  const c = m.clone()
  c.deleteTree('a')
  c.set('new', file(9))
  t.ok(m.has('a/y/z') && !m.has('new'), 'the original is untouched')
  t.ok(m.hasContent(hash(2)) && !m.hasContent(hash(9)), 'and so is its hash index')
  t.ok(c.hasContent(hash(9)) && !c.hasContent(hash(2)))
})

t.test('sameEntry', async (t) => {
  t.ok(sameEntry(file(1), file(1)))
  t.ok(sameEntry(file(1), { ...file(1), hash: Buffer.from(hash(1)) } as Entry), 'hashes compare by content')
  t.notOk(sameEntry(file(1), file(1, { mtime: 0 })))
  t.notOk(sameEntry(file(1), file(1, { mode: 0 })))
  t.notOk(sameEntry(file(1), file(1, { size: 0 })))
  t.notOk(sameEntry(file(1), file(2)))
  t.ok(sameEntry(dir(), dir({ mtime: 0 })), 'folder mtimes do not count')
  t.notOk(sameEntry(dir(), dir({ mode: 0 })))
  t.ok(sameEntry(link('t'), link('t', { mtime: 0 })))
  t.notOk(sameEntry(link('t'), link('u')))
  t.notOk(sameEntry(file(1), dir()))
  t.notOk(sameEntry(dir(), link('t')))
})
