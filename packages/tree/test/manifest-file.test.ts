/**
 * The state file: every kind of entry, stamps and the digest come back as they were saved; a
 * byte changed anywhere, a cut file or another tag reads as nothing known.
 */
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { type Entry, Manifest } from '@fsyncd/protocol'
import { Prng } from '@fsyncd/testkit'
import { loadManifest, saveManifest, type StatStamp } from '../src/manifest-file.js'

const dir = mkdtempSync(join(tmpdir(), 'fsyncd-mf-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

function randomManifest (r: Prng, n: number): { m: Manifest, stamps: Map<string, StatStamp> } {
  const m = new Manifest()
  const stamps = new Map<string, StatStamp>()
  const names = ['a', 'b c', 'é', '日本', '🙂', '.x', 'n'.repeat(200)]
  for (let i = 0; i < n; i++) {
    const p = `${r.pick(names)}${i}/${r.pick(names)}`
    const mtime = r.pick([0, -1_000, 1_700_000_000_123, 8.64e15, r.u32()])
    const kind = (['file', 'dir', 'link'] as const)[r.weighted([6, 2, 2])]
    let e: Entry
    if (kind === 'file') {
      e = { kind, mode: r.pick([0o644, 0o755, 0o4755, 0]), mtime, size: r.pick([0, 1, 2 ** 53 - 1, r.u32()]), hash: createHash('sha256').update(String(i)).digest() }
      if (r.chance(0.8)) stamps.set(p, { size: e.size, mtimeMs: mtime + 0.25, ctimeMs: r.u32() / 7, ino: r.pick([1, 2 ** 53 - 1, r.u32()]) })
    } else if (kind === 'dir') {
      e = { kind, mode: r.pick([0o755, 0o700, 0o1777]), mtime }
    } else {
      e = { kind, mtime, target: r.pick(['a', '../../x', '/abs/olute', '🙂/é', '']) }
    }
    m.set(p, e)
  }
  return { m, stamps }
}

t.test('round trip: entries, stamps, digest', async (t) => {
  const r = new Prng(0x5a7e)
  for (const n of [0, 1, 500]) {
    const { m, stamps } = randomManifest(r, n)
    const file = join(dir, `rt-${n}`)
    const sum = await saveManifest(file, 'tag', m, { stamps, digest: true })
    const saved = await loadManifest(file, 'tag')
    t.same(saved?.sum, sum, `${n} entries: the checksum the save returned names the file`)
    if (saved === undefined) {
      t.fail(`${n} entries: not loaded`)
      continue
    }
    t.same(saved.rows().map(([p, e, s]) => [p, e, s]), [...m.entries()].map(([p, e]) => [p, e, stamps.get(p) ?? null]), `${n} entries and their stamps`)
    t.same(saved.digest, m.digest(), `${n} entries: the digest`)
    const back = new Manifest()
    for (const [p, e] of saved.rows()) back.set(p, e)
    t.same(back.digest(), m.digest(), `${n} entries: a manifest rebuilt from the rows digests the same`)
  }
})

t.test('kept entries only; no digest unless asked', async (t) => {
  const { m } = randomManifest(new Prng(3), 50)
  const file = join(dir, 'keep')
  await saveManifest(file, 'tag', m, { keep: (_p, e) => e.kind !== 'link' })
  const saved = await loadManifest(file, 'tag')
  t.same(saved?.rows().map(([p]) => p), [...m.entries()].filter(([, e]) => e.kind !== 'link').map(([p]) => p))
  t.equal(saved?.digest, undefined)
  t.ok(saved?.rows().every(([, , s]) => s === null), 'no stamps were given')
})

t.test('a damaged or foreign file is nothing known', async (t) => {
  const { m, stamps } = randomManifest(new Prng(4), 200)
  const file = join(dir, 'damaged')
  await saveManifest(file, 'tag', m, { stamps, digest: true })
  const good = readFileSync(file)
  t.equal(await loadManifest(file, 'other'), undefined, 'another tag')
  t.equal(await loadManifest(join(dir, 'missing'), 'tag'), undefined, 'no file')
  const r = new Prng(5)
  for (let i = 0; i < 40; i++) {
    const bad = Buffer.from(good)
    const at = r.below(bad.length)
    bad[at] = (bad[at] as number) ^ (1 << r.below(8))
    writeFileSync(file, bad)
    t.equal(await loadManifest(file, 'tag'), undefined, `bit flipped at ${at}`)
  }
  for (const len of [0, 1, 32, 33, good.length - 1]) {
    writeFileSync(file, good.subarray(0, len))
    t.equal(await loadManifest(file, 'tag'), undefined, `cut to ${len} bytes`)
  }
  writeFileSync(file, good)
  t.ok(await loadManifest(file, 'tag'), 'the undamaged file loads')
})
