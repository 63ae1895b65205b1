/**
 * Watch mode's account of its work, and moves it sees in halves: `push --json` prints one
 * `synced` event per sync, counting that sync alone, once the server made it durable; a folder
 * renamed into a new folder (the watcher reports the new folder first and the old one later),
 * or out of the tree and back in elsewhere within the hold of a deletion (0.7 s), is still one
 * move.
 */
import t from 'tap'
import { existsSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parentOf } from '@fsyncd/protocol'
import { diffTrees, type Proc, run, seededBytes, startServer, tempDir, waitFor } from '../helpers/fsyncd.js'

interface Synced { event: string, ops: number, filesSent: number, filesDeduplicated: number, deleted: number, wireBytesOut: number, durationMs: number, failures: unknown[] }

/** The `synced` events a watching client printed so far. */
function events (client: Proc): Synced[] {
  return client.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Synced).filter((e) => e.event === 'synced')
}

async function watchJson (t: { teardown: (fn: () => Promise<void>) => void }, src: string, dest: string): Promise<Proc> {
  const server = await startServer(dest)
  const client = run(['push', src, `127.0.0.1:${server.port}`, '--state-dir', tempDir(), '--json', '--log-level', 'debug'])
  t.teardown(async () => {
    client.proc.kill('SIGKILL')
    await server.stop()
  })
  await waitFor(() => events(client).length > 0 || undefined, 15_000, () => `initial sync: ${client.stderr()}`, client.exited)
  return client
}

/** Waits for the event after the first `seen`, and returns it. */
async function nextEvent (client: Proc, seen: number, label: string): Promise<Synced> {
  return await waitFor(() => events(client)[seen], 15_000, () => `${label}: ${client.stderr().slice(-2000)}`, client.exited)
}

t.test('one synced event per sync, counting that sync, once the server has it', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  mkdirSync(join(src, 'docs'))
  for (const name of ['a.txt', 'b.txt', 'docs/c.txt']) writeFileSync(join(src, name), `content of ${name}`)
  const client = await watchJson(t, src, dest)

  const first = events(client)[0] as Synced
  t.equal(first.filesSent, 3, 'the reconcile sent the three files')
  t.equal(first.ops, 4, 'and created the folder: four ops')
  t.ok(first.wireBytesOut > 0, 'its bytes on the wire')

  writeFileSync(join(src, 'new.txt'), 'a new file')
  const created = await nextEvent(client, 1, 'the event of a new file')
  // Printed once the server made it durable: the file is there as the event comes.
  t.equal(readFileSync(join(dest, 'new.txt'), 'utf8'), 'a new file', 'the new file is on the server when its event comes')
  t.match(created, { ops: 1, filesSent: 1, deleted: 0, failures: [] }, 'that sync alone: one file sent')
  t.ok(created.wireBytesOut > 0 && created.wireBytesOut < first.wireBytesOut + 200, `its own bytes (${created.wireBytesOut})`)

  unlinkSync(join(src, 'a.txt'))
  const deleted = await nextEvent(client, 2, 'the event of a delete')
  t.notOk(existsSync(join(dest, 'a.txt')), 'the deleted file is gone from the server when its event comes')
  t.match(deleted, { ops: 1, filesSent: 0, deleted: 1 }, 'that sync alone: one delete')
  t.same(diffTrees(src, dest), [], 'the trees match')
})

t.test('a folder renamed into a new folder, or out of a busy one, is one move, not copies and a delete', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  for (let i = 0; i < 60; i++) {
    mkdirSync(join(src, 'proj', `m${i % 6}`), { recursive: true })
    writeFileSync(join(src, 'proj', `m${i % 6}`, `f${i}.bin`), seededBytes(500 + i, 8000))
  }
  mkdirSync(join(src, 'quiet'))
  mkdirSync(join(src, 'still'))
  const client = await watchJson(t, src, dest)
  let at = 'proj'
  const moves: Array<{ to: string, newFolder: boolean }> = [
    // Into a new folder: the client scans it as the move lands there, and hears of the old
    // folder in a later batch of the watcher. At 5 ms, this split every time before #movedAway
    // (69 ops: 60 copies on the server, folders, a delete); at 20 ms, never.
    { to: 'archive-1/proj', newFolder: true },
    // Out of a folder the watcher just reported changes in (archive-1: a hot folder, with a fast
    // watch of its own) into one it has not: removals must wait for the watcher's batch, which
    // has both halves. Reported at once, the server deleted the folder and got every file again.
    { to: 'quiet/proj', newFolder: false },
    { to: 'archive-3/proj', newFolder: true },
    // Out of a folder that arrived whole (archive-3/proj: the client watches each of its folders
    // itself, and such a watch reports a removal at once) into one only the watcher's next batch
    // reports (still: untouched so far): the deletion waits for it (#hold). Deleted at once, the
    // server got the folder's files again.
    { to: 'still/m0', newFolder: false },
  ]
  for (const [i, { to, newFolder }] of moves.entries()) {
    const round = i + 1
    const before = events(client).length
    if (newFolder) {
      mkdirSync(join(src, parentOf(to)))
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    const from = to === 'still/m0' ? `${at}/m0` : at
    renameSync(join(src, from), join(src, to))
    if (to !== 'still/m0') at = to
    // A tree the server is renaming into is read again.
    await waitFor(() => { try { return (diffTrees(src, dest).length === 0 && events(client).length > before) || undefined } catch { return undefined } }, 15_000, () => `move ${round}: ${client.stderr().slice(-3000)}`, client.exited)
    // The watcher's later batch (the old folder) must find nothing left to do.
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const after = events(client).slice(before)
    const sum = (k: 'ops' | 'filesSent' | 'filesDeduplicated' | 'deleted' | 'wireBytesOut'): number => after.reduce((n, e) => n + e[k], 0)
    t.same({ filesDeduplicated: sum('filesDeduplicated'), filesSent: sum('filesSent'), deleted: sum('deleted') }, { filesDeduplicated: 0, filesSent: 0, deleted: 0 }, `move ${round}: no file copied on the server or sent, nothing deleted`)
    // A mkdir, the move, and the attributes of the folder it left.
    t.ok(sum('ops') <= 3, `move ${round}: a mkdir and a move (${sum('ops')} ops in ${after.length} syncs)`, { log: sum('ops') <= 3 ? '' : client.stderr().split('\n').filter((l) => /scanning|pushing|moved away/.test(l)).slice(-12).join('\n') })
    t.ok(sum('wireBytesOut') < 1000, `move ${round}: a few hundred bytes out (${sum('wireBytesOut')})`)
  }
  t.same(diffTrees(src, dest), [], 'the trees match')
})

t.test('a folder moved out of the tree and back in elsewhere within 0.7 s is one move', async (t) => {
  const src = tempDir()
  const dest = tempDir()
  const outside = tempDir()
  mkdirSync(join(src, 'a'))
  mkdirSync(join(src, 'b'))
  for (let i = 0; i < 10; i++) writeFileSync(join(src, 'a', `f${i}.bin`), seededBytes(900 + i, 8000))
  const client = await watchJson(t, src, dest)
  const before = events(client).length
  // Two halves the watcher cannot put together: the old path's removal, then 150 ms later the
  // content elsewhere. Deleted at once (before #hold), the server lost it and got it all again.
  renameSync(join(src, 'a'), join(outside, 'a'))
  await new Promise((resolve) => setTimeout(resolve, 150))
  renameSync(join(outside, 'a'), join(src, 'b', 'a'))
  await waitFor(() => { try { return (diffTrees(src, dest).length === 0 && events(client).length > before) || undefined } catch { return undefined } }, 15_000, () => `the move back: ${client.stderr().slice(-3000)}`, client.exited)
  await new Promise((resolve) => setTimeout(resolve, 1200)) // past the hold: nothing left to delete
  const after = events(client).slice(before)
  const sum = (k: 'ops' | 'filesSent' | 'filesDeduplicated' | 'deleted'): number => after.reduce((n, e) => n + e[k], 0)
  t.same({ filesSent: sum('filesSent'), filesDeduplicated: sum('filesDeduplicated'), deleted: sum('deleted') }, { filesSent: 0, filesDeduplicated: 0, deleted: 0 }, 'nothing sent again, copied or deleted')
  t.ok(sum('ops') <= 2, `a move (${sum('ops')} ops in ${after.length} syncs)`)
  t.same(diffTrees(src, dest), [], 'the trees match')
})
