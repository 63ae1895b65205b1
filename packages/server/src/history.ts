/**
 * The server's history: every change it applied, one JSON line each, in DEST/.fsyncd/history.jsonl
 * (time, client, operation, path, content size, bytes on the wire, bytes saved). Appended after
 * the change is durable, once per batch; rotated at `maxBytes` into history.1.jsonl … so it
 * cannot fill the disk. `fsyncd log DEST` reads it.
 */
import { appendFile, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { STATE_DIR } from '@fsyncd/protocol'

export interface HistoryRecord {
  /** ISO time the change became durable. */
  time: string
  /** The client's address. */
  client: string
  op: 'upload' | 'copy' | 'mkdir' | 'symlink' | 'delete' | 'move' | 'attrs'
  path: string
  /** For `move`: where it went. */
  to?: string
  /** File content size. */
  size?: number
  /** Payload bytes that crossed the wire for it (headers aside). */
  wire?: number
  /** size − wire: what not sending the whole file saved. */
  saved?: number
}

export const HISTORY_FILE = 'history.jsonl'

/** The history files of a destination, oldest first. */
export function historyFiles (dest: string, keep = 3): string[] {
  const dir = join(dest, STATE_DIR)
  const files: string[] = []
  for (let i = keep; i >= 1; i--) files.push(join(dir, `history.${i}.jsonl`))
  files.push(join(dir, HISTORY_FILE))
  return files
}

export class History {
  readonly #file: string
  readonly #dest: string
  readonly #maxBytes: number
  readonly #keep: number
  #queue: Promise<void> = Promise.resolve()

  constructor (dest: string, opts: { maxBytes?: number, keep?: number } = {}) {
    this.#dest = dest
    this.#file = join(dest, STATE_DIR, HISTORY_FILE)
    this.#maxBytes = opts.maxBytes ?? 16 * 1024 * 1024
    this.#keep = opts.keep ?? 3
  }

  /** Appends records (in order, one write per call); failures only cost history, never a sync. */
  append (records: HistoryRecord[]): Promise<void> {
    if (records.length === 0) return this.#queue
    const text = records.map((r) => JSON.stringify(r)).join('\n') + '\n'
    this.#queue = this.#queue.then(async () => {
      await this.#rotateIfFull()
      await appendFile(this.#file, text)
    }).catch(() => {})
    return this.#queue
  }

  async #rotateIfFull (): Promise<void> {
    const size = await stat(this.#file).then((s) => s.size, () => 0)
    if (size < this.#maxBytes) return
    const files = historyFiles(this.#dest, this.#keep) // oldest first, current last
    await unlink(files[0] as string).catch(() => {})
    for (let i = 1; i < files.length; i++) await rename(files[i] as string, files[i - 1] as string).catch(() => {})
  }
}
