/**
 * IgnoreRules answers DEFAULT_IGNORES with its own expression: it must answer exactly what the
 * `ignore` matcher answers for those patterns, for files and folders at any depth, alone and
 * beside --exclude patterns (a negation among which can take a default back).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import ignore from 'ignore'
import { Prng } from '@fsyncd/testkit'
import { DEFAULT_IGNORES, IgnoreRules } from '../src/ignore-rules.js'

/** Names near every default pattern, on and off its edges. */
const NAMES = [
  'a', 'a.swp', 'a.swo', 'a.swx', 'a.swq', '.swp', 'swp', 'a.swp.txt', 'a.sw', 'a~', '~', '~a', 'a~b',
  '.#a', '.#', 'a.#b', '#a', '4913', '14913', '49130', 'a.tmp', '.tmp', 'tmp', 'a.tmpx', 'a.tmp.b', 'A.TMP',
  'keep.tmp', 'build', 'x.log', 'ünï.tmp', 'a b~',
]

function randomPath (r: Prng): string {
  return Array.from({ length: r.between(1, 4) }, () => r.pick(NAMES)).join('/')
}

const root = mkdtempSync(join(tmpdir(), 'fsyncd-ignore-'))
t.teardown(() => rmSync(root, { recursive: true, force: true }))

const cases: Array<{ name: string, excludes: string[] }> = [
  { name: 'defaults alone', excludes: [] },
  { name: 'defaults and excludes', excludes: ['build/', '*.log'] },
  { name: 'an exclude negating a default', excludes: ['*.log', '!keep.tmp'] },
]

for (const { name, excludes } of cases) {
  t.test(name, async (t) => {
    const rules = new IgnoreRules(root, excludes)
    const reference = ignore().add([...DEFAULT_IGNORES, ...excludes])
    const r = new Prng(0x16e0 + excludes.length)
    let ignored = 0
    let wrong = 0
    for (let i = 0; i < 20_000; i++) {
      const path = randomPath(r)
      const isDir = r.chance(0.3)
      const want = reference.ignores(path + (isDir ? '/' : ''))
      if (rules.ignores(path, isDir) !== want && wrong++ < 5) t.fail(`${path}${isDir ? '/' : ''}: expected ${want ? '' : 'not '}ignored`)
      if (want) ignored++
    }
    t.equal(wrong, 0, 'same answer as the ignore matcher for 20,000 random paths')
    t.ok(ignored > 2000 && ignored < 18_000, `both answers drawn (${ignored} ignored)`)
  })
}

t.test('a negation keeps a default-ignored name', async (t) => {
  const rules = new IgnoreRules(root, ['!keep.tmp'])
  t.equal(rules.ignores('d/keep.tmp', false), false)
  t.equal(rules.ignores('d/other.tmp', false), true)
  t.equal(new IgnoreRules(root).ignores('d/keep.tmp', false), true)
})

t.test('no defaults', async (t) => {
  const rules = new IgnoreRules(root, [], false)
  t.equal(rules.ignores('a.swp', false), false)
  t.equal(rules.ignores('.fsyncd', true), true, 'the state folder always is')
})

t.test('the server\'s temp names are never synced, whatever the rules say', async (t) => {
  for (const rules of [new IgnoreRules(root), new IgnoreRules(root, ['!.fsyncd-tmp-*', '!*']), new IgnoreRules(root, [], false)]) {
    t.equal(rules.ignores('.fsyncd-tmp-0a1b-2', false), true, 'at the root')
    t.equal(rules.ignores('a/b/.FSYNCD-TMP-x', false), true, 'deeper, in any case')
    t.equal(rules.ignores('a/.fsyncd-tmp-d', true), true, 'a folder so named')
    t.equal(rules.ignores('a/x.fsyncd-tmp-d', false), false, 'the prefix elsewhere in a name is a name like any')
  }
})
