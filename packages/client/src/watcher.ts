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
  readonly #subscription: watcher.AsyncSubscription

  private constructor (subscription: watcher.AsyncSubscription) {
    this.#subscription = subscription
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
    return new TreeWatcher(sub)
  }

  async close (): Promise<void> {
    await this.#subscription.unsubscribe().catch(() => {})
  }
}
