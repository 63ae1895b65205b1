/**
 * Ignore rules, --dry-run and the mass-delete guard, through the real CLI.
 */
import t from 'tap'
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { diffTrees, pushOnce, run, snapshot, startServer, tempDir } from '../helpers/fsyncd.js'

t.test('ignore rules: editor temp files, .fsyncignore at any level, --exclude', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  mkdirSync(join(src, 'app/build'), { recursive: true })
  mkdirSync(join(src, 'app/src'), { recursive: true })
  writeFileSync(join(src, 'app/src/main.c'), 'int main;')
  writeFileSync(join(src, 'app/src/.main.c.swp'), 'vim swap')
  writeFileSync(join(src, 'app/src/main.c~'), 'emacs backup')
  writeFileSync(join(src, 'app/src/4913'), '')
  writeFileSync(join(src, 'app/build/out.o'), 'object')
  writeFileSync(join(src, 'app/.fsyncignore'), 'build/\n*.log\n')
  writeFileSync(join(src, 'app/run.log'), 'log')
  writeFileSync(join(src, 'top.log'), 'not under app/: kept')
  writeFileSync(join(src, 'secret.key'), 'excluded by flag')
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  const state = tempDir()
  const r = await pushOnce(src, server.port, state, {}, ['--exclude', '*.key'])
  t.equal(r.code, 0, r.stderr)
  const got = [...snapshot(dest).keys()].sort()
  t.same(got, ['app', 'app/.fsyncignore', 'app/src', 'app/src/main.c', 'top.log'], 'only what no rule ignores')

  // A file the server holds that is ignored here now is left alone, not deleted.
  writeFileSync(join(dest, 'app/run.log'), 'server copy')
  rmSync(join(src, 'app/src/main.c'))
  const r2 = await pushOnce(src, server.port, tempDir(), {}, ['--exclude', '*.key'])
  t.equal(r2.code, 0, r2.stderr)
  t.ok(existsSync(join(dest, 'app/run.log')), 'ignored on the server: kept')
  t.notOk(existsSync(join(dest, 'app/src/main.c')), 'a real delete still travels')
})

t.test('--dry-run prints the plan and changes nothing', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  writeFileSync(join(src, 'a.txt'), 'aaaa')
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  const state = tempDir()
  t.equal((await pushOnce(src, server.port, state)).code, 0)
  writeFileSync(join(src, 'b.txt'), 'new')
  writeFileSync(join(src, 'a-copy.txt'), 'aaaa')
  rmSync(join(src, 'a.txt'))
  const before = JSON.stringify([...snapshot(dest)])
  const p = run(['push', src, `127.0.0.1:${server.port}`, '--dry-run', '--json', '--state-dir', state])
  t.equal(await p.exited, 0, p.stderr())
  const plan = JSON.parse(p.stdout().trim().split('\n').pop() as string) as { dryRun: boolean, ops: Array<{ op: string, path?: string, from?: string, to?: string }> }
  t.equal(plan.dryRun, true)
  t.same(plan.ops.map((o) => [o.op, o.path ?? `${o.from} -> ${o.to}`]).sort(), [['attrs', 'a-copy.txt'], ['move', 'a.txt -> a-copy.txt'], ['upload', 'b.txt']], 'a rename (then the copy\'s own mtime) and an upload')
  t.equal(JSON.stringify([...snapshot(dest)]), before, 'the destination is untouched')
  const human = run(['push', src, `127.0.0.1:${server.port}`, '--dry-run', '--state-dir', state])
  t.equal(await human.exited, 0)
  t.match(human.stdout(), /upload +b\.txt/)
  t.match(human.stdout(), /nothing was changed/)
  t.equal((await pushOnce(src, server.port, state)).code, 0, 'a real sync after a dry run still works')
  t.same(diffTrees(src, dest), [])
})

t.test('an empty or missing source does not empty the destination unless asked', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  writeFileSync(join(src, 'precious.txt'), 'keep me')
  const server = await startServer(dest)
  t.teardown(() => server.stop())
  const state = tempDir()
  t.equal((await pushOnce(src, server.port, state)).code, 0)
  rmSync(join(src, 'precious.txt'))
  const r = await pushOnce(src, server.port, state)
  t.equal(r.code, 7, 'refused: exit 7')
  t.match(r.stderr, /refusing to delete them all/)
  t.ok(existsSync(join(dest, 'precious.txt')), 'nothing deleted')
  const missing = await pushOnce(join(src, 'no-such-folder'), server.port, tempDir())
  t.equal(missing.code, 7, 'a missing source is refused the same way')
  const ok = await pushOnce(src, server.port, state, {}, ['--allow-delete-all'])
  t.equal(ok.code, 0, ok.stderr)
  t.same(diffTrees(src, dest), [], 'emptied when asked')
})
