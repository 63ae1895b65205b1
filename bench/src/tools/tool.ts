/** What every compared tool offers the runner: one destination, syncs through a counting proxy. */
import type { Link } from '../proxy.js'

export interface SyncResult {
  tool: string
  /** Bytes client → server and server → client, as counted by the proxy. */
  up: number
  down: number
  total: number
  /** Wall time of the sync as the user would see it (process start to exit, or first to last byte). */
  wallMs: number
  /** Peak RSS in bytes of the client and the server processes (fsyncd only). */
  clientRss?: number | undefined
  serverRss?: number | undefined
  /** The tool's own account of its traffic, for comparison with the proxy's. */
  own?: string | undefined
  /** Extra figures the tool reports (fsyncd's summary), kept in the JSON. */
  detail?: Record<string, unknown> | undefined
  /** Set when the tool itself failed (non-zero exit). */
  error?: string | undefined
}

export interface Tool {
  readonly name: string
  /** Takes `dest` (an existing, empty folder) as the destination of `src`. */
  open: (src: string, dest: string, work: string) => Promise<void>
  /** One sync of the current source; over `link` when given (see CountingProxy). */
  sync: (link?: Link) => Promise<SyncResult>
  /**
   * A tool that watches its source (the daemon) is opened on a copy of its own, and its measured
   * sync is `measure`: it makes the change there itself (`change`) and times what follows.
   */
  readonly ownSource?: boolean
  measure?: (change: () => Promise<void>, link?: Link) => Promise<SyncResult>
  close: () => Promise<void>
}

export function failed (tool: string, error: string): SyncResult {
  return { tool, up: 0, down: 0, total: 0, wallMs: 0, error }
}
