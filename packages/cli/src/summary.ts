import type { PlannedOp, PushSummary } from '@fsyncd/client'

export function formatBytes (n: number): string {
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
    `data:                ${formatBytes(s.dataBytes)}`,
    `on the wire:         ${formatBytes(wire)} (${formatBytes(s.wireBytesOut)} out, ${formatBytes(s.wireBytesIn)} in)`,
    `speed-up:            ${speedup.toFixed(2)}`,
    `time:                ${(s.durationMs / 1000).toFixed(2)} s`,
    ...(s.failures.length > 0 ? [`FAILED:              ${s.failures.length} path(s), see the log`] : []),
    '',
  ].join('\n')
}

/** One sync of watch mode, on one line: `synced 3 ops: 1 file sent, 1 deleted; 4.2 KiB on the wire in 38 ms`. */
export function formatSyncLine (s: PushSummary): string {
  const parts = [
    ...(s.filesSent > 0 ? [`${s.filesSent} file${s.filesSent === 1 ? '' : 's'} sent`] : []),
    ...(s.filesDeduplicated > 0 ? [`${s.filesDeduplicated} deduplicated`] : []),
    ...(s.deleted > 0 ? [`${s.deleted} deleted`] : []),
    ...(s.failures.length > 0 ? [`${s.failures.length} FAILED (see the log)`] : []),
  ]
  return `synced ${s.ops} op${s.ops === 1 ? '' : 's'}${parts.length > 0 ? ': ' + parts.join(', ') : ''}; ${formatBytes(s.wireBytesOut + s.wireBytesIn)} on the wire in ${s.durationMs} ms`
}

/** One planned operation as a plain object (for --dry-run --json). */
export function describeOp (op: PlannedOp): Record<string, unknown> {
  switch (op.t) {
    case 'file': return { op: op.have ? 'copy-on-server' : 'upload', path: op.path, size: op.entry.size }
    case 'move': return { op: 'move', from: op.from, to: op.to }
    case 'delete': return { op: 'delete', path: op.path }
    case 'mkdir': return { op: 'mkdir', path: op.path }
    case 'symlink': return { op: 'symlink', path: op.path, target: op.target }
    case 'attrs': return { op: 'attrs', path: op.path }
  }
}

/** The plan for people: one line per operation, then totals. */
export function formatPlan (ops: PlannedOp[]): string {
  const lines = ops.map((op) => {
    switch (op.t) {
      case 'file': return op.have ? `copy on server  ${op.path}` : `upload          ${op.path} (${formatBytes(op.entry.size)})`
      case 'move': return `move            ${op.from} -> ${op.to}`
      case 'delete': return `delete          ${op.path}`
      case 'mkdir': return `mkdir           ${op.path}`
      case 'symlink': return `symlink         ${op.path} -> ${op.target}`
      case 'attrs': return `attributes      ${op.path}`
    }
  })
  const upload = ops.reduce((n, op) => n + (op.t === 'file' && !op.have ? op.entry.size : 0), 0)
  return [...lines, `dry run: ${ops.length} operation(s), ${formatBytes(upload)} of content to send at most; nothing was changed`, ''].join('\n')
}
