/**
 * Progress of a long reconcile for people: a bar redrawn in place on a terminal, a plain line
 * every few seconds otherwise (logs, CI). Reads the client's counters; knows nothing of syncing.
 */
import type { Progress } from '@fsyncd/client'
import { formatBytes } from './summary.js'

export function formatProgress (p: Progress, now = Date.now()): string {
  if (p.scanning === true) {
    // Totals that still grow make no bar and no ETA.
    const rate = p.bytesDone / Math.max((now - p.startedAt) / 1000, 0.001)
    return `scanning and sending  ${p.opsDone}/${p.opsTotal}+ ops  ${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)}+  ${formatBytes(Math.round(rate))}/s`
  }
  const fraction = p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : p.opsTotal > 0 ? p.opsDone / p.opsTotal : 1
  const secs = Math.max((now - p.startedAt) / 1000, 0.001)
  const rate = p.bytesDone / secs
  const eta = rate > 0 && p.bytesTotal > p.bytesDone ? Math.ceil((p.bytesTotal - p.bytesDone) / rate) : 0
  const width = 20
  const filled = Math.min(width, Math.round(fraction * width))
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.floor(fraction * 100)}%  ${p.opsDone}/${p.opsTotal} ops  ` +
    `${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)}  ${formatBytes(Math.round(rate))}/s  ETA ${eta}s`
}

/** Starts drawing; returns the function that stops it (and clears the bar). */
export function showProgress (read: () => Progress | undefined, tty: boolean): () => void {
  let drawn = false
  const timer = setInterval(() => {
    const p = read()
    if (p === undefined || p.opsTotal === 0) return
    if (tty) {
      process.stdout.write(`\r\x1b[K${formatProgress(p)}`)
      drawn = true
    } else {
      process.stdout.write(`progress: ${formatProgress(p)}\n`)
    }
  }, tty ? 200 : 5000)
  timer.unref()
  return () => {
    clearInterval(timer)
    if (drawn) process.stdout.write('\r\x1b[K')
  }
}
