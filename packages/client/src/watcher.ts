/**
 * Filesystem events as hints: @parcel/watcher tells which paths may have changed; the caller
 * rescans them. It drops events under bursts, and its inotify backend does not watch the
 * subfolders of a folder that arrives whole (a renamed folder, `mkdir -p`): writes there are
 * reported under the old name or not at all. So the caller asks `watchFolders` for such
 * subtrees, which adds a plain fs.watch per folder beside parcel's subscription, and rescans
 * everything periodically: a missed event delays a change, it never loses it.
 */
import { type FSWatcher, watch } from 'node:fs'
import { join, relative, sep } from 'node:path'
import watcher from '@parcel/watcher'

export type DirtyListener = (paths: string[]) => void

/** Extra per-folder watches at most; past that, the periodic rescan is the safety net. */
const MAX_EXTRA_WATCHES = 4096

export class TreeWatcher {
  readonly #root: string
  readonly #onDirty: DirtyListener
  readonly #subscription: watcher.AsyncSubscription
  readonly #extra = new Map<string, FSWatcher>()

  private constructor (root: string, subscription: watcher.AsyncSubscription, onDirty: DirtyListener) {
    this.#root = root
    this.#subscription = subscription
    this.#onDirty = onDirty
  }

  /**
   * Watches `root`; `onDirty` gets wire paths (relative, '/'-separated) of what may have changed;
   * `onError` gets errors of the backend (after which the caller should rescan everything).
   */
  static async start (root: string, ignore: string[], onDirty: DirtyListener, onError: (err: Error) => void): Promise<TreeWatcher> {
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
      if (paths.length > 0) onDirty(paths)
    }, { ignore })
    return new TreeWatcher(root, sub, onDirty)
  }

  /** Adds a direct watch on each of these folders (wire paths) that has none yet. */
  watchFolders (folders: Iterable<string>): void {
    for (const dir of folders) {
      if (this.#extra.has(dir) || this.#extra.size >= MAX_EXTRA_WATCHES) continue
      let w: FSWatcher
      try {
        w = watch(join(this.#root, dir), { persistent: false }, (_event, name) => {
          this.#onDirty([name === null ? dir : `${dir}/${name.toString()}`])
        })
      } catch {
        continue // gone already: its parent's event covers it
      }
      const drop = (): void => {
        w.close()
        if (this.#extra.get(dir) === w) this.#extra.delete(dir)
      }
      w.on('error', drop)
      w.on('close', () => { if (this.#extra.get(dir) === w) this.#extra.delete(dir) })
      this.#extra.set(dir, w)
    }
  }

  /** Drops direct watches at or below a folder that went away or moved. */
  unwatchFolder (dir: string): void {
    for (const [d, w] of this.#extra) {
      if (d === dir || d.startsWith(dir + '/')) {
        w.close()
        this.#extra.delete(d)
      }
    }
  }

  async close (): Promise<void> {
    for (const w of this.#extra.values()) w.close()
    this.#extra.clear()
    await this.#subscription.unsubscribe().catch(() => {})
  }
}
