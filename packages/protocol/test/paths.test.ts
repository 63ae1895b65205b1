import { posix } from 'node:path'
import t from 'tap'
import { checkPath, ErrorCode, FsyncdError, isWithin, MAX_NAME_BYTES, MAX_PATH_BYTES, parentOf, pathProblem, STATE_DIR, TEMP_NAME_PREFIX } from '../src/index.js'
import { Prng } from '@fsyncd/testkit'

/**
 * The wire path rules of paths.ts: a table of traversal attempts and odd-but-legal names through
 * pathProblem and checkPath, then isWithin/parentOf, including the prefix-sibling trap (`a` vs `ab`).
 */

const n = (bytes: number, ch = 'n'): string => ch.repeat(bytes)
/** A path of exactly `total` bytes (for totals the test uses) made of 200-byte names and a shorter last one. */
function pathOfBytes (total: number): string {
  const names = [n(Math.min(200, total))]
  let left = total - names[0]!.length
  while (left > 1) {
    const take = Math.min(200, left - 1)
    names.push(n(take))
    left -= take + 1
  }
  return names.join('/')
}

const bad: Array<[string, string]> = [
  ['empty', ''],
  ['..', '..'],
  ['../a', '../a'],
  ['a/..', 'a/..'],
  ['a/../b', 'a/../b'],
  ['a/b/../../..', 'a/b/../../..'],
  ['.', '.'],
  ['./a', './a'],
  ['a/./b', 'a/./b'],
  ['a/.', 'a/.'],
  ['/etc/passwd', '/etc/passwd'],
  ['/', '/'],
  ['//a', '//a'],
  ['a//b', 'a//b'],
  ['a/', 'a/'],
  ['a/b/', 'a/b/'],
  ['NUL alone', '\0'],
  ['NUL in a name', 'a\0b'],
  ['NUL after a name', 'a/\0'],
  ['backslash', 'a\\b'],
  ['backslash traversal', '..\\..\\etc'],
  ['drive letter', 'C:\\Windows'],
  ['.fsyncd', STATE_DIR],
  ['.fsyncd/x', `${STATE_DIR}/x`],
  ['.fsyncd/tmp/a/b', `${STATE_DIR}/tmp/a/b`],
  ['a server temp file', `${TEMP_NAME_PREFIX}0123abcd-1`],
  ['a server temp file in a folder', `a/b/${TEMP_NAME_PREFIX}x`],
  ['a folder named like a server temp file', `a/${TEMP_NAME_PREFIX}x/b`],
  ['a server temp name in capitals', `${TEMP_NAME_PREFIX.toUpperCase()}X`],
  ['the bare temp prefix', TEMP_NAME_PREFIX],
  ['256-byte name', n(MAX_NAME_BYTES + 1)],
  ['256-byte name deeper', `a/${n(MAX_NAME_BYTES + 1)}/b`],
  ['86 three-byte chars (258 bytes, 86 chars)', n(86, '€')],
  ['4097-byte path', pathOfBytes(MAX_PATH_BYTES + 1)],
  ['a huge path', `${'a/'.repeat(100_000)}a`],
]

const good: Array<[string, string]> = [
  ['a plain name', 'a'],
  ['nested', 'a/b/c'],
  ['spaces', 'my file.txt'],
  ['spaces in folders', 'a b/ c /d '],
  ['a lone space', ' '],
  ['...', '...'],
  ['..a', '..a'],
  ['a..', 'a..'],
  ['a/.../b', 'a/.../b'],
  ['.hidden', '.hidden'],
  ['a/.hidden/b', 'a/.hidden/b'],
  ['.fsyncd below the root', `a/${STATE_DIR}`],
  ['.fsyncdx', `${STATE_DIR}x`],
  ['.fsyncd.bak/x', `${STATE_DIR}.bak/x`],
  ['the temp prefix not at the start of a name', `a/x${TEMP_NAME_PREFIX}`],
  ['the temp prefix cut short', TEMP_NAME_PREFIX.slice(0, -1)],
  ['unicode', 'café/日本語/🙂.txt'],
  ['combining marks', 'e\u0301'],
  ['a newline in a name', 'a\nb'],
  ['a colon', 'a:b'],
  ['255-byte name', n(MAX_NAME_BYTES)],
  ['85 three-byte chars (255 bytes)', n(85, '€')],
  ['4096-byte path', pathOfBytes(MAX_PATH_BYTES)],
]

t.test('the helper builds paths of the byte length it is asked for', async (t) => {
  t.equal(Buffer.byteLength(pathOfBytes(MAX_PATH_BYTES)), MAX_PATH_BYTES)
  t.equal(Buffer.byteLength(pathOfBytes(MAX_PATH_BYTES + 1)), MAX_PATH_BYTES + 1)
})

t.test('traversal attempts and non-canonical paths are refused', async (t) => {
  for (const [name, p] of bad) {
    t.type(pathProblem(p), 'string', `pathProblem: ${name}`)
    try {
      checkPath(p)
      t.fail(`checkPath accepted ${name}`)
    } catch (err) {
      t.ok(err instanceof FsyncdError && err.code === ErrorCode.BAD_PATH, `checkPath: ${name} → BAD_PATH`)
      t.ok((err as Error).message.length < 400, `checkPath: ${name}: the message stays short even for a huge path`)
    }
  }
})

t.test('odd but legal names are accepted, and returned unchanged', async (t) => {
  for (const [name, p] of good) {
    t.equal(pathProblem(p), undefined, `pathProblem: ${name}`)
    t.equal(checkPath(p), p, `checkPath: ${name}`)
  }
})

t.test('every accepted path is what posix.normalize leaves alone, and stays inside the root', async (t) => {
  const r = new Prng(77)
  const alphabet = ['a', 'b', '.', '..', '', ' ', '/', '\\', '\0', 'é', '.fsyncd']
  let accepted = 0
  let bad = 0
  for (let i = 0; i < 20000; i++) {
    let p = ''
    for (let k = r.between(0, 6); k > 0; k--) p += r.pick(alphabet)
    if (pathProblem(p) !== undefined) continue
    accepted++
    const resolved = posix.join('/root', p)
    const ok = posix.normalize(p) === p && !posix.isAbsolute(p) && resolved.startsWith('/root/') &&
      !p.split('/').includes('..') && !p.includes('\0') && p !== STATE_DIR && !p.startsWith(`${STATE_DIR}/`)
    if (!ok && bad++ < 5) t.fail(`accepted ${JSON.stringify(p)}`)
  }
  t.equal(bad, 0, `20000 seeded strings over a hostile alphabet: all ${accepted} accepted ones are canonical and inside the root`)
  t.ok(accepted > 100, 'enough of them were accepted for this to mean something')
})

/** The rules as plainly stated (the one-pass pathProblem must agree with it on every string). */
function plainProblem (p: string): boolean {
  if (p.length === 0 || p.includes('\0') || Buffer.byteLength(p) > MAX_PATH_BYTES || p.startsWith('/') || p.includes('\\')) return true
  for (const name of p.split('/')) {
    if (name === '' || name === '.' || name === '..' || Buffer.byteLength(name) > MAX_NAME_BYTES) return true
  }
  return posix.normalize(p) !== p || (p.split('/', 1)[0] as string).toLowerCase() === STATE_DIR ||
    p.split('/').some((name) => name.toLowerCase().startsWith(TEMP_NAME_PREFIX))
}

t.test('pathProblem refuses exactly what the plain statement of the rules refuses', async (t) => {
  const r = new Prng(78)
  // Names near the byte limits in 1-, 2-, 3- and 4-byte characters, lone surrogates (3 bytes as
  // UTF-8), every separator and dot form, and the state folder in any case.
  const alphabet = ['a', '.', '..', '/', '//', '\\', '\0', 'é', '€', '🙂', '\ud800', '\udc00', '\udbff\udfff', '.fsyncd', '.FSyncD', '.fsyncdx', TEMP_NAME_PREFIX, '.FSYNCD-TMP-', '.fsyncd-tmp', 'ſ', 'K',
    n(254), n(84, '€'), n(63, '🙂'), n(127, 'é'), n(200)]
  let refused = 0
  let wrong = 0
  for (let i = 0; i < 50_000; i++) {
    let p = ''
    for (let k = r.between(1, r.chance(0.1) ? 40 : 6); k > 0; k--) p += r.pick(alphabet)
    const want = plainProblem(p)
    if ((pathProblem(p) !== undefined) !== want && wrong++ < 5) t.fail(`${JSON.stringify(p.length > 80 ? p.slice(0, 80) + '…' : p)} (${Buffer.byteLength(p)} bytes): expected ${want ? 'refused' : 'accepted'}`)
    if (want) refused++
  }
  t.equal(wrong, 0, '50,000 seeded strings: the same verdict')
  t.ok(refused > 5000 && refused < 45_000, `both verdicts drawn (${refused} refused)`)
  for (const [, p] of [...bad, ...good]) t.equal(pathProblem(p) !== undefined, plainProblem(p), `table: ${JSON.stringify(p.slice(0, 40))}`)
})

t.test('isWithin', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['a', 'a', true],
    ['a/b', 'a', true],
    ['a/b/c', 'a', true],
    ['a/b/c', 'a/b', true],
    ['ab', 'a', false],
    ['a-b', 'a', false],
    ['a.b', 'a', false],
    ['a', 'ab', false],
    ['a/bc', 'a/b', false],
    ['a/b', 'a/bc', false],
    ['a', 'a/b', false],
    ['b/a', 'a', false],
    ['anything', '', true],
    ['a/b', '', true],
    ['', '', true],
  ]
  for (const [p, dir, want] of cases) t.equal(isWithin(p, dir), want, `isWithin(${JSON.stringify(p)}, ${JSON.stringify(dir)})`)
})

t.test('parentOf', async (t) => {
  t.equal(parentOf('a'), '')
  t.equal(parentOf('a/b'), 'a')
  t.equal(parentOf('a/b/c'), 'a/b')
  t.equal(parentOf('...'), '')
  t.equal(parentOf('é/日本'), 'é')
  // Walking up from any path reaches the root, through folders the path is within.
  const p = 'a/b c/d/.e/f'
  const chain: string[] = []
  for (let q = p; q !== ''; q = parentOf(q)) {
    t.ok(isWithin(p, q), `${p} is within ${q}`)
    chain.push(q)
  }
  t.same(chain, ['a/b c/d/.e/f', 'a/b c/d/.e', 'a/b c/d', 'a/b c', 'a'])
})
