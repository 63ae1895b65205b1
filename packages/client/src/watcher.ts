/**
 * Filesystem events as hints: @parcel/watcher tells which paths may have changed; the caller
 * rescans them. It drops events under bursts and says nothing of a renamed folder's children,
 * so the client rescans whole subtrees and reconciles periodically: a missed event delays a
 * change, it never loses it.
 */
import { relative, sep } from 'node:path'
import watcher from '@parcel/watcher'

export type DirtyListener = (paths: string[]) => void

export class TreeWatcher {
  readonly #root: string
  readonly #ignore: string[]
  readonly #onDirty: DirtyListener
  readonly #onError: (err: Error) => void
  #subscription: watcher.AsyncSubscription | undefined
  #generation = 0

  private constructor (root: string, ignore: string[], onDirty: DirtyListener, onError: (err: Error) => void) {
    this.#root = root
    this.#ignore = ignore
    this.#onDirty = onDirty
    this.#onError = onError
  }

  /**
   * Watches `root`; `onDirty` gets wire paths (relative, '/'-separated) of what may have changed;
   * `onError` gets errors of the backend (after which the caller should rescan everything).
   */
  static async start (root: string, ignore: string[], onDirty: DirtyListener, onError: (err: Error) => void): Promise<TreeWatcher> {
    const w = new TreeWatcher(root, ignore, onDirty, onError)
    w.#subscription = await w.#subscribe()
    return w
  }

  /**
   * Drops the subscription and subscribes afresh. Needed after a folder is renamed: the inotify
   * backend then loses the watches of the folder's subfolders and reports nothing written there.
   * The two cannot overlap (subscriptions share one inotify descriptor, and the old one's removal
   * would remove the new one's watches), so the caller must rescan for what happened in between.
   */
  async restart (): Promise<void> {
    const old = this.#subscription
    this.#subscription = undefined
    await old?.unsubscribe().catch(() => {})
    this.#subscription = await this.#subscribe()
  }

  async #subscribe (): Promise<watcher.AsyncSubscription> {
    const generation = ++this.#generation
    return await watcher.subscribe(this.#root, (err, events) => {
      if (generation !== this.#generation) return
      if (err !== null) {
        this.#onError(err)
        return
      }
      const paths: string[] = []
      for (const ev of events) {
        const rel = relative(this.#root, ev.path)
        if (rel === '' || rel.startsWith('..')) continue
        paths.push(sep === '/' ? rel : rel.split(sep).join('/'))
      }
      if (paths.length > 0) this.#onDirty(paths)
    }, { ignore: this.#ignore })
  }

  async close (): Promise<void> {
    const sub = this.#subscription
    this.#subscription = undefined
    await sub?.unsubscribe().catch(() => {})
  }
}
