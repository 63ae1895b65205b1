/**
 * `fsyncd log DEST`: the server's history of applied changes, oldest first; `--follow` keeps
 * printing as changes land (and follows a rotation), `--json` prints the records as stored.
 */
import { open, stat } from 'node:fs/promises'
import { historyFiles, type HistoryRecord } from '@fsyncd/server'
import { formatBytes } from '../summary.js'

export interface LogArgs { dest: string, follow: boolean, json: boolean }

function formatRecord (r: HistoryRecord): string {
  const what = r.op === 'move' ? `${r.path} -> ${r.to ?? '?'}` : r.path
  const sizes = r.size === undefined ? '' : `  ${formatBytes(r.size)} (wire ${formatBytes(r.wire ?? 0)}, saved ${formatBytes(r.saved ?? 0)})`
  return `${r.time}  ${r.client}  ${r.op.padEnd(7)} ${what}${sizes}`
}

/** Prints the complete lines of `file` from `offset`; returns the offset after the last one. */
async function printFrom (file: string, offset: number, json: boolean): Promise<number> {
  const fh = await open(file, 'r').catch(() => undefined)
  if (fh === undefined) return offset
  try {
    const { size } = await fh.stat()
    if (size <= offset) return offset
    const buf = Buffer.alloc(size - offset)
    await fh.read(buf, 0, buf.length, offset)
    const end = buf.lastIndexOf(10) + 1 // only whole lines: a writer may be mid-line
    for (const line of buf.subarray(0, end).toString('utf8').split('\n')) {
      if (line === '') continue
      if (json) {
        process.stdout.write(line + '\n')
        continue
      }
      try {
        process.stdout.write(formatRecord(JSON.parse(line) as HistoryRecord) + '\n')
      } catch {
        process.stdout.write(`(unreadable line) ${line.slice(0, 200)}\n`)
      }
    }
    return offset + end
  } finally {
    await fh.close()
  }
}

export async function log (args: LogArgs, signal: AbortSignal): Promise<number> {
  const files = historyFiles(args.dest)
  const current = files[files.length - 1] as string
  let offset = 0
  for (const f of files) {
    const end = await printFrom(f, 0, args.json)
    if (f === current) offset = end
  }
  while (args.follow && !signal.aborted) {
    await new Promise((resolve) => setTimeout(resolve, 300))
    const size = await stat(current).then((s) => s.size, () => 0)
    if (size < offset) offset = 0 // rotated: a new file began
    offset = await printFrom(current, offset, args.json)
  }
  return 0
}
