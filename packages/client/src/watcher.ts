/**
 * Filesystem events as hints: @parcel/watcher tells which paths may have changed; the caller
 * rescans them. It drops events under bursts, and its inotify backend does not watch the
 * subfolders of a folder that arrives whole (a renamed folder, `mkdir -p`): writes there are
 * reported under the old name or not at all. So the caller asks `watchFolders` for such
 * subtrees, which adds a plain fs.watch per folder beside parcel's subscription, and rescans
 * everything periodically: a missed event delays a change, it never loses it.
 *
 * parcel also holds a batch for 50 ms whenever the last one was less than 500 ms before (its
 * Debounce.cc; after a quiet spell the first event goes at once): under steady changes, most of
 * the time from a save to the server. So the folders its events name become "hot" for a while:
 * each gets a plain fs.watch too (the last MAX_HOT_FOLDERS of them), whose events arrive within a
 * millisecond. The next save in a folder being worked in goes without waiting for parcel; its
 * event for it comes later and finds nothing left to do. Moves seen in halves this way are put
 * together by the client (its #movedAway and #hold).
 */
import { type FSWatcher, lstatSync, statSync, watch } from 'node:fs'
import { join, relative, sep } from 'node:path'
import watcher from '@parcel/watcher'
import { isWithin, parentOf } from '@fsyncd/protocol'

export type DirtyListener = (paths: string[]) => void

/** Extra per-folder watches at most; past that, the periodic rescan is the safety net. */
const MAX_EXTRA_WATCHES = 4096
/** Folders with a fast watch because parcel reported changes in them lately (least recent dropped). */
const MAX_HOT_FOLDERS = 64

export class TreeWatcher {
  readonly #root: string
  readonly #onDirty: DirtyListener
  readonly #subscription: watcher.AsyncSubscription
  readonly #extra = new Map<string, FSWatcher>()
  /** Hot folders' fast watches, least recently reported first. */
  readonly #hot = new Map<string, FSWatcher>()
  /** Wire paths not to report (the client's state folder). */
  readonly #ignored: string[]

  private constructor (root: string, subscription: watcher.AsyncSubscription, onDirty: DirtyListener, ignored: string[]) {
    this.#root = root
    this.#subscription = subscription
    this.#onDirty = onDirty
    this.#ignored = ignored
  }

  /**
   * Watches `root`; `onDirty` gets wire paths (relative, '/'-separated) of what may have changed;
   * `onError` gets errors of the backend (after which the caller should rescan everything).
   */
  static async start (root: string, ignore: string[], onDirty: DirtyListener, onError: (err: Error) => void): Promise<TreeWatcher> {
    let self: TreeWatcher | undefined
    const sub = await watcher.subscribe(root, (err, events) => {
      if (err !== null) {
        onError(err)
        return
      }
      const paths: string[] = []
      for (const ev of events) {
        const rel = relative(root, ev.path)
        if (rel === '' || rel.startsWith('..')) continue
        paths.push(sep === '/' ? rel : rel.split(sep).join('/'))
      }
      if (paths.length === 0) return
      onDirty(paths)
      // Folders in use, not a burst over many (a checkout, a build): parcel batches those well.
      const folders = new Set(paths.map(parentOf))
      if (self !== undefined && folders.size <= MAX_HOT_FOLDERS) for (const dir of folders) self.#heat(dir)
    }, { ignore })
    self = new TreeWatcher(root, sub, onDirty, ignore.map((i) => relative(root, i).split(sep).join('/')))
    return self
  }

  /** Gives `dir` a fast watch, or keeps the one it has for longer (see MAX_HOT_FOLDERS). */
  #heat (dir: string): void {
    const had = this.#hot.get(dir)
    if (had !== undefined) {
      this.#hot.delete(dir)
      this.#hot.set(dir, had)
      return
    }
    if (this.#extra.has(dir) || this.#ignored.some((i) => isWithin(dir, i))) return
    const w = this.#watchOne(dir)
    if (w === undefined) return
    this.#hot.set(dir, w)
    if (this.#hot.size > MAX_HOT_FOLDERS) {
      const [coldest, cw] = this.#hot.entries().next().value as [string, FSWatcher]
      this.#hot.delete(coldest)
      cw.close()
    }
  }

  /** Adds a direct watch on each of these folders (wire paths) that has none yet. */
  watchFolders (folders: Iterable<string>): void {
    for (const dir of folders) {
      if (this.#extra.has(dir) || this.#extra.size >= MAX_EXTRA_WATCHES) continue
      // A hot folder's watch is kept for as long as the folder is there.
      const hot = this.#hot.get(dir)
      const w = hot ?? this.#watchOne(dir)
      this.#hot.delete(dir)
      if (w !== undefined) this.#extra.set(dir, w)
    }
  }

  /**
   * A plain fs.watch of one folder, reporting its entries. It follows the folder's inode, not
   * its name: once the folder is gone or renamed (an event about itself, or another folder at
   * its path), the watch ends and the folder's path is reported.
   */
  #watchOne (dir: string): FSWatcher | undefined {
    const abs = dir === '' ? this.#root : join(this.#root, dir)
    let w: FSWatcher
    try {
      const ino = statSync(abs).ino
      w = watch(abs, { persistent: false }, (_event, name) => {
        if (lstatSync(abs, { throwIfNoEntry: false })?.ino !== ino) {
          w.close()
          this.#onDirty([dir])
          return
        }
        const p = name === null ? dir : dir === '' ? name.toString() : `${dir}/${name.toString()}`
        if (p === '' || this.#ignored.some((i) => isWithin(p, i))) return
        this.#onDirty([p])
      })
    } catch {
      return undefined // gone already: its parent's event covers it
    }
    const forget = (): void => {
      for (const m of [this.#extra, this.#hot]) if (m.get(dir) === w) m.delete(dir)
    }
    w.on('error', () => { w.close(); forget() })
    w.on('close', forget)
    return w
  }

  /** Drops direct watches at or below a folder that went away or moved. */
  unwatchFolder (dir: string): void {
    for (const m of [this.#extra, this.#hot]) {
      for (const [d, w] of m) {
        if (isWithin(d, dir)) {
          w.close()
          m.delete(d)
        }
      }
    }
  }

  async close (): Promise<void> {
    for (const w of [...this.#extra.values(), ...this.#hot.values()]) w.close()
    this.#extra.clear()
    this.#hot.clear()
    await this.#subscription.unsubscribe().catch(() => {})
  }
}
