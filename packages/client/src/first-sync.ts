/**
 * A first sync into an empty server streams: each entry the scan sets goes out while the scan
 * walks on, instead of after it. The link is busy from the first folder, where it used to wait
 * for the whole tree to be listed and hashed, as rsync's incremental recursion starts sending
 * before its file list is complete. Over a 100 Mbit/s link the bench's `initial` (99 MB) ends
 * 150 ms sooner and `varied` (2,000 small files) 50 ms; on loopback, where the client's CPU
 * limits those two, neither moves, but 20,000 small files take 2.83-2.92 s instead of
 * 3.24-3.32 s (the server's work on each file now overlaps the scan).
 *
 * Only into an empty server: there, every entry is a create, exactly what the plan would make
 * of it (see planner.ts, step 2), and nothing can be a move, a delete or a replacement, which
 * need the whole tree. Parents go before children (the scan sets a folder before anything in
 * it; a folder it found unchanged is created here first). A file whose content went out before
 * is a copy (`have`), as in the plan. What this leaves out (files whose hash is pending, and
 * whatever the scan did not tell) the plan after the scan finds not on the server yet: `remote`
 * is updated here as the plan updates it, so the plan sends only the rest.
 *
 * What the server refused meanwhile, or the uploader dropped (a file changed since the scan),
 * the uploader has taken out of `remote` again, so that the next sync tries it: `sent` tells
 * the plan after the scan to leave those paths alone in this one (plan's `handled`).
 */
import { type Entry, type Manifest, parentOf } from '@fsyncd/protocol'
import { isHashPending } from '@fsyncd/tree'
import type { PlannedOp } from './planner.js'

export class FirstSyncStream {
  readonly #local: Manifest
  readonly #remote: Manifest
  readonly #send: (ops: PlannedOp[]) => Promise<void>
  /** Paths of every op emitted: the server held nothing, so each is sent (or was refused). */
  readonly #sent = new Set<string>()
  readonly sent: ReadonlySet<string> = this.#sent
  #queue: PlannedOp[] = []
  #running: Promise<void> | undefined
  #error: unknown
  /** Ops and bytes of file content streamed so far (for progress). */
  readonly totals = { opsTotal: 0, bytesTotal: 0 }

  /** `send` gets the ops in order, one call at a time. */
  constructor (local: Manifest, remote: Manifest, send: (ops: PlannedOp[]) => Promise<void>) {
    this.#local = local
    this.#remote = remote
    this.#send = send
  }

  /** For the scan's `onEntry`: plans `path` (and any parent the server lacks) and sends it. */
  readonly add = (path: string, entry: Entry): void => {
    if (this.#error !== undefined || this.#sent.has(path)) return
    if (entry.kind === 'file' && isHashPending(entry)) return
    const parents: string[] = []
    for (let q = parentOf(path); q !== '' && !this.#sent.has(q); q = parentOf(q)) parents.push(q)
    for (const q of parents.reverse()) {
      const e = this.#local.get(q)
      if (e?.kind !== 'dir') return // not a folder here (yet): the plan sees to it
      this.#emit({ t: 'mkdir', path: q, mode: e.mode, mtime: e.mtime }, q, e)
    }
    switch (entry.kind) {
      case 'dir':
        this.#emit({ t: 'mkdir', path, mode: entry.mode, mtime: entry.mtime }, path, entry)
        break
      case 'link':
        this.#emit({ t: 'symlink', path, target: entry.target, mtime: entry.mtime }, path, entry)
        break
      case 'file':
        this.totals.bytesTotal += entry.size
        this.#emit({ t: 'file', path, entry, have: this.#remote.hasContent(entry.hash), basis: undefined }, path, entry)
        break
    }
  }

  /** Waits until every op is handed to `send`; throws what `send` threw. */
  async done (): Promise<void> {
    while (this.#running !== undefined) await this.#running
    if (this.#error !== undefined) throw this.#error
  }

  #emit (op: PlannedOp, path: string, entry: Entry): void {
    this.#sent.add(path)
    this.#queue.push(op)
    this.#remote.set(path, entry)
    this.totals.opsTotal++
    if (this.#running === undefined) this.#running = this.#pump()
  }

  /** Sends what is queued, what queues meanwhile too; always awaits `send` at least once. */
  async #pump (): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const ops = this.#queue
        this.#queue = []
        await this.#send(ops)
      }
    } catch (err) {
      this.#error = err
      this.#queue = []
    } finally {
      this.#running = undefined
    }
  }
}
