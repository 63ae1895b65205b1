import type { PushSummary } from '@fsyncd/client'

function bytes (n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i] as string}`
}

/** rsync --stats style, for people. */
export function formatSummary (s: PushSummary): string {
  const wire = s.wireBytesOut + s.wireBytesIn
  const speedup = wire > 0 ? (s.dataBytes / wire) : 0
  return [
    `files sent:          ${s.filesSent}`,
    `files deduplicated:  ${s.filesDeduplicated}`,
    `deleted:             ${s.deleted}`,
    `operations:          ${s.ops}`,
    `data:                ${bytes(s.dataBytes)}`,
    `on the wire:         ${bytes(wire)} (${bytes(s.wireBytesOut)} out, ${bytes(s.wireBytesIn)} in)`,
    `speed-up:            ${speedup.toFixed(2)}`,
    `time:                ${(s.durationMs / 1000).toFixed(2)} s`,
    ...(s.failures.length > 0 ? [`FAILED:              ${s.failures.length} path(s), see the log`] : []),
    '',
  ].join('\n')
}
