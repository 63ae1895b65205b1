/**
 * `fsyncd push`: keeps a server's destination equal to a local folder.
 *
 *   connect → handshake → is my cached view of the server current (digest)? else list it →
 *   scan → plan → push (pipelined) → acks → [--once: bye] → watch → rescan dirty paths → plan → …
 *
 * A dropped connection is retried with exponential backoff and jitter while the watcher keeps
 * collecting dirty paths; every reconnect reconciles the whole tree, so nothing is lost.
 */
import { createHash } from 'node:crypto'
import { lstatSync } from 'node:fs'
import { lstat, mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { Logger } from 'pino'
import { clientHandshake, Connection, dial, ErrorCode, FsyncdError, fromWireEntry, isWithin, Manifest, MAX_FRAME, parentOf, type PartialUpload, STATE_DIR } from '@fsyncd/protocol'
import { isHashPending, LocalTree, loadManifest, mtimeOf, type SavedManifest, saveManifest, type ScanOptions } from '@fsyncd/tree'
import { FirstSyncStream } from './first-sync.js'
import { IgnoreRules, isIgnoreFile } from './ignore-rules.js'
import { plan, type PlannedOp } from './planner.js'
import { ServerBlocks } from './server-blocks.js'
import { readSyncMark, type SyncMark, writeSyncMark } from './sync-mark.js'
import { type Failure, Uploader, type UploadStats } from './uploader.js'
import type { TreeWatcher } from './watcher.js'

export interface PushOptions {
  src: string
  host: string
  port: number
  token?: string | undefined
  /** Plain TCP even with a token. Off: a token means TLS 1.3 with the token as pre-shared key. */
  insecure?: boolean
  /** Where the client keeps its caches (stat stamps, its view of the server). */
  stateDir: string
  log: Logger
  /** Coalescing window for watcher events. */
  debounceMs?: number
  /** Full rescan period in watch mode (the watcher is a hint). */
  rescanIntervalMs?: number
  /** Reconnect backoff bounds. */
  retryMinMs?: number
  retryMaxMs?: number
  /** gitignore-style patterns from the root, besides .fsyncignore files and the default temp-file rules. */
  excludes?: string[]
  /** Let an empty (or vanished) source empty a non-empty destination. Off: such a sync is refused. */
  allowDeleteAll?: boolean
}

export interface Progress {
  opsTotal: number
  opsDone: number
  /** File content the plan puts on the server (uploaded or built there), and how much is done. */
  bytesTotal: number
  bytesDone: number
  startedAt: number
  /** The totals still grow: the scan is still finding what to send (a first sync streams). */
  scanning?: boolean
}

/** A source that is empty (or gone) while the server holds files: most likely a mistake. */
export class EmptySourceError extends Error {
  readonly code = 'EMPTY_SOURCE'
}

export interface PushSummary extends UploadStats {
  /** Bytes this client put on the wire and read from it, framing included. */
  wireBytesOut: number
  wireBytesIn: number
  durationMs: number
  failures: Failure[]
  /** True when the server's listing had to be fetched (the cached view was stale or cold). */
  listed: boolean
}

interface Link {
  conn: Connection
  uploader: Uploader
  answers: Promise<void>
  ping: NodeJS.Timeout
  /** Whether connecting fetched the server's listing (until the first report says so). */
  listed: boolean
  /** The link's totals at its last watch-mode report (see #report). */
  reported: PushSummary
}

const MAX_DIRTY_PATHS = 10_000
/** A file whose content the server holds at more paths is not looked at as a move (see #movedAway). */
const MAX_MOVE_SOURCES = 8
/**
 * Watch mode: how long a path gone from here waits before its deletion is planned, for the
 * watcher to tell where it went (see #hold). Longer than parcel's longest batch (500 ms).
 */
const HOLD_GONE_MS = 700
/** Held paths join a plan's scope (as sources of moves) while there are at most this many. */
const MAX_HELD_IN_SCOPE = 256
/** --once: passes over files that changed while being sent, before they are reported. */
const ONCE_PASSES = 3
const PING_INTERVAL_MS = 30_000
/** How long the server may say nothing before the client gives up on the connection. */
const SERVER_SILENCE_MS = 300_000
/** Full-rescan period when the filesystem cannot be watched. */
const POLL_INTERVAL_MS = 5000
/**
 * @parcel/watcher gathers events into batches, delivered at most 500 ms after their first event
 * (its Debounce.cc), and leaves out a path both created and removed within one batch. A scan
 * that ran meanwhile may have seen (and pushed) such a path, whose removal then never comes as
 * an event: the destination kept it until the hourly rescan (a churn test lost 1 path in ~10
 * runs of 8 s). So what a scan adds that was created (or moved, or changed: its ctime) within
 * RECENT_MS of the scan is looked at again RECHECK_MS later; older paths cannot be in a batch
 * still pending, and an update or removal of a path the watcher reported before always comes.
 */
const RECHECK_MS = 1000
const RECENT_MS = 2000
/** Old versions at least this big are worth a `getsig` round trip (~1.2 % of their size) when the cache lacks them. */
const FETCH_SUMS_FROM = 64 * 1024
/**
 * Files changed in place from this size on are hashed by the upload that reads them anyway, not
 * by the scan (see LocalTree's ScanOptions): the server starts while the file is read, where a
 * scan's hash first cost a whole read (76 ms of a 100 MB edit). Smaller ones travel inline.
 */
const SCAN = { deferHashFrom: 1024 * 1024 }

export class PushClient {
  readonly #opts: PushOptions
  readonly #log: Logger
  readonly #tree: LocalTree
  readonly #rules: IgnoreRules
  /** A --once run (see once()): what the scans leave out is reported. */
  #once = false
  /** Files a --once run could not read, and why. */
  readonly #unreadable = new Map<string, string>()
  /** The model of the server's tree (see #remoteView: built from #savedRemote when first needed). */
  readonly #remote = new Manifest()
  /** The saved view of the server, until #remoteView builds #remote from it. */
  #savedRemote: SavedManifest | undefined
  /** What the last --once run that ended with nothing left to do saw (see sync-mark.ts). */
  #syncMark: SyncMark | undefined
  readonly #stateKey: string
  readonly #summary: PushSummary = emptySummary()

  #link: Link | undefined
  #watcher: TreeWatcher | undefined
  #dirty = new Set<string>()
  #fullRescan = false
  #timer: NodeJS.Timeout | undefined
  /** Pending rechecks of what scans added (see RECHECK_MS). */
  readonly #rechecks = new Set<NodeJS.Timeout>()
  #working: Promise<void> = Promise.resolve()
  #closed = false
  #wakeClosed: (() => void) | undefined
  /** Watch mode's listener: told of each sync once the server made it durable. */
  #onSynced: ((s: PushSummary) => void) | undefined
  /** Watch mode: paths gone from here whose deletion waits, and until when (see #hold). */
  readonly #held = new Map<string, number>()
  #holdTimer: NodeJS.Timeout | undefined
  #stateLoaded = false
  #progress: { totals: { opsTotal: number, bytesTotal: number }, uploader: Uploader | undefined, startedAt: number, scanning?: boolean } | undefined
  #blocks: ServerBlocks | undefined

  constructor (opts: PushOptions) {
    this.#opts = { ...opts, src: resolve(opts.src) }
    this.#log = opts.log
    this.#rules = new IgnoreRules(this.#opts.src, opts.excludes ?? [])
    this.#tree = new LocalTree(this.#opts.src, {
      ignore: (p, isDir) => this.#rules.ignores(p, isDir),
      onSkip: (path, reason, kind) => {
        this.#log.warn({ path, reason }, 'skipped')
        // --once reports what it leaves out; watching, the next change there tries again.
        if (!this.#once) return
        if (kind === 'unstable') this.#dirty.add(path) // looked at again by the passes below
        else if (kind === 'unreadable') this.#unreadable.set(path, reason)
      },
    })
    this.#stateKey = createHash('sha256').update(`${this.#opts.src}\0${opts.host}:${opts.port}`).digest('hex').slice(0, 24)
  }

  get summary (): PushSummary {
    return this.#summary
  }

  /** Where the current reconcile stands (for a progress display); undefined when none runs. */
  progress (): Progress | undefined {
    const p = this.#progress
    if (p === undefined) return undefined
    const u = this.#link?.uploader.stats ?? p.uploader?.stats
    return { ...p.totals, opsDone: u?.ops ?? 0, bytesDone: (u?.dataBytes ?? 0), startedAt: p.startedAt, ...(p.scanning === true ? { scanning: true } : {}) }
  }

  /** Reconciles once and returns when the server has made every change durable. */
  async once (): Promise<PushSummary> {
    const started = Date.now()
    this.#once = true
    await this.#loadState()
    const link = await this.#connect()
    try {
      await this.#reconcile(link)
      // Everything is sent and the model of the server says what it will hold: the state is
      // saved while the server makes it durable (a few ms of packing per MB of block cache, in
      // time otherwise spent waiting for acks). The save at the end then writes only what a
      // refusal or another pass changed; a crash in between costs a listing (digests differ).
      const early = this.#saveState(true)
      await link.uploader.drain()
      await early.catch((err: unknown) => this.#log.warn({ err: (err as Error).message }, 'cannot save state'))
      // Files that changed while being sent: looked at again once quiet, a few times; what
      // would not hold still is reported, never left out silently.
      for (let pass = 1; pass <= ONCE_PASSES && (this.#dirty.size > 0 || this.#fullRescan); pass++) {
        await new Promise((resolve) => setTimeout(resolve, 250 * pass))
        await this.#pushDirty(link)
        await link.uploader.drain()
      }
      for (const path of this.#dirty) this.#summary.failures.push({ path, code: ErrorCode.IO, message: 'kept changing while being sent; not synced' })
      for (const [path, reason] of this.#unreadable) this.#summary.failures.push({ path, code: ErrorCode.IO, message: `cannot read: ${reason}; not synced` })
      await link.conn.send({ t: 'bye' })
      link.conn.close()
      await link.answers.catch(() => {})
      await this.#saveState(true)
      await this.#markInSync(link)
    } finally {
      this.#retire(link)
    }
    this.#summary.durationMs = Date.now() - started
    return this.#summary
  }

  /**
   * The plan a reconcile would carry out (what would be uploaded, built on the server from
   * content it holds, moved, deleted), with nothing changed on either side.
   */
  async dryRun (): Promise<PlannedOp[]> {
    await this.#loadState()
    const link = await this.#connect()
    try {
      await this.#tree.scan('')
      const remote = this.#remoteView()
      this.#guardMassDelete()
      return plan(this.#tree.manifest, remote.clone(), [''], (p, d) => this.#rules.ignores(p, d))
    } finally {
      await link.conn.send({ t: 'bye' }).catch(() => {})
      link.conn.close()
      this.#retire(link)
    }
  }

  /**
   * Reconciles, then watches and pushes every change until `close()`. Connection failures are
   * retried forever with backoff; the promise rejects only on an error retrying cannot fix
   * (authentication, protocol version).
   */
  async watch (onSynced?: (s: PushSummary) => void): Promise<void> {
    this.#onSynced = onSynced
    await this.#loadState()
    let rescanMs = this.#opts.rescanIntervalMs ?? 3_600_000
    try {
      // Loaded here: --once never pays for the native watcher module.
      const { TreeWatcher } = await import('./watcher.js')
      this.#watcher = await TreeWatcher.start(this.#opts.src, [join(this.#opts.src, STATE_DIR)], (paths) => this.#markDirty(paths), (err) => {
        this.#log.warn({ err: err.message }, 'watcher error: rescanning everything')
        this.#markDirty([''])
      })
    } catch (err) {
      if (!(await exists(this.#opts.src))) throw Object.assign(new Error(`${this.#opts.src} does not exist`), { code: 'ENOENT' })
      // Most often the inotify watch limit: poll instead of giving up.
      rescanMs = Math.min(rescanMs, POLL_INTERVAL_MS)
      this.#log.warn({ err: (err as Error).message, pollMs: rescanMs }, 'cannot watch the source (inotify limit? raise it with: sysctl fs.inotify.max_user_watches=1048576); polling with full rescans instead')
    }
    const rescan = setInterval(() => this.#markDirty(['']), rescanMs)
    let attempt = 0
    try {
      while (!this.#closed) {
        let link: Link
        const started = Date.now()
        try {
          link = await this.#connect()
        } catch (err) {
          if (isFatal(err)) throw err
          const delay = backoff(attempt++, this.#opts.retryMinMs ?? 200, this.#opts.retryMaxMs ?? 30_000)
          this.#log.warn({ err: (err as Error).message, retryInMs: delay }, 'cannot reach the server')
          await this.#sleep(delay)
          continue
        }
        try {
          this.#dirty.clear()
          this.#fullRescan = false
          await this.#reconcile(link)
          await link.uploader.drain()
          attempt = 0 // backoff restarts only after a sync that worked
          await this.#saveState(true)
          this.#tell(link, started, true)
          this.#log.info({ entries: this.#tree.manifest.size }, 'in sync; watching')
          this.#link = link
          try {
            if (this.#dirty.size > 0 || this.#fullRescan) this.#schedule()
            await Promise.race([link.answers, this.#closedPromise()])
          } finally {
            this.#link = undefined
          }
          if (!this.#closed) this.#log.warn('connection to the server ended; reconnecting')
        } catch (err) {
          if (isFatal(err)) throw err
          if (err instanceof EmptySourceError) this.#log.error(err.message)
          else if (!this.#closed) this.#log.warn({ err: (err as Error).message }, 'sync interrupted; reconnecting')
        } finally {
          await this.#working.catch(() => {})
          this.#retire(link)
        }
        if (!this.#closed) await this.#sleep(backoff(attempt++, this.#opts.retryMinMs ?? 200, this.#opts.retryMaxMs ?? 30_000))
      }
    } finally {
      clearInterval(rescan)
      clearTimeout(this.#timer)
      clearTimeout(this.#holdTimer)
      for (const t of this.#rechecks) clearTimeout(t)
      await this.#watcher?.close()
      await this.#saveState().catch(() => {})
    }
  }

  /** Stops watching: waits for the change being pushed, then ends the connection. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#timer)
    clearTimeout(this.#holdTimer)
    for (const t of this.#rechecks) clearTimeout(t)
    await this.#working.catch(() => {})
    const link = this.#link
    if (link !== undefined) {
      await link.uploader.drain().catch(() => {})
      await link.conn.send({ t: 'bye' }).catch(() => {})
      link.conn.close()
    }
    this.#wakeClosed?.()
  }

  // ---- connection ----------------------------------------------------------------------------

  async #connect (): Promise<Link> {
    const { host, port, token } = this.#opts
    const socket = await dial({ host, port, tlsToken: this.#opts.insecure === true ? undefined : token })
    // Generous: a server fsyncing a big file answers nothing meanwhile, and a slow disk is no
    // reason to start over. TCP keepalive finds a peer that is gone for good.
    socket.setKeepAlive(true, 30_000)
    socket.setTimeout(SERVER_SILENCE_MS, () => socket.destroy(new FsyncdError(ErrorCode.TIMEOUT, 'the server stopped answering')))
    const conn = new Connection(socket)
    let partials: PartialUpload[] | undefined
    let listed = false
    try {
      await clientHandshake(conn, this.#opts.token)
      conn.maxFrame = MAX_FRAME
      const ready = await conn.expect('ready')
      partials = ready.partials
      this.#serverDigest = ready.digest
      this.#serverEntries = ready.entries
      if (!(this.#savedRemote?.digest ?? this.#remoteView().digest()).equals(ready.digest)) {
        this.#log.info({ entries: ready.entries }, 'fetching the server listing (cached view is cold or stale)')
        this.#summary.listed = true
        listed = true
        await conn.send({ t: 'list' })
        this.#savedRemote = undefined
        this.#remote.deleteTree('')
        for (;;) {
          const batch = await conn.expect('entries')
          for (const w of batch.entries) {
            const [p, e] = fromWireEntry(w)
            this.#remote.set(p, e)
          }
          if (batch.done) break
        }
      }
    } catch (err) {
      conn.destroy()
      throw err
    }
    const uploader = new Uploader(conn, {
      root: this.#opts.src,
      remote: this.#remote,
      ...(this.#blocks !== undefined ? { blocks: this.#blocks } : {}),
      ...(partials !== undefined ? { partials } : {}),
      onDirty: (p) => this.#markDirty([p]),
      isScanned: (p, st) => this.#tree.isVersion(p, st),
      onHashed: (p, st, hash) => this.#tree.settleHash(p, st, hash),
      onUnstable: (p) => this.#tree.hashInScan(p),
      onFailure: (f) => this.#log.error(f, 'the server refused a change'),
    })
    const answers = uploader.readAnswers()
    answers.catch(() => {}) // observed through Promise.race / drain
    // Pings for as long as the link lives: a long scan or a quiet watch must not look idle to
    // the server (it closes connections silent for 120 s).
    const ping = setInterval(() => { conn.send({ t: 'ping' }).catch(() => {}) }, PING_INTERVAL_MS)
    ping.unref()
    // Reported from zero: the first report has the handshake and the listing in its bytes.
    return { conn, uploader, answers, ping, listed, reported: emptySummary() }
  }

  #retire (link: Link): void {
    const s = this.#summary
    const t = linkTotals(link.uploader, link.conn)
    for (const k of COUNTERS) s[k] += t[k]
    s.failures.push(...t.failures)
    clearInterval(link.ping)
    link.conn.destroy()
  }

  /**
   * Tells watch mode's listener of one sync, which took from `startedAt` until the server made
   * it durable: what `link` did since its last report (so ops of a later sync, sent before this
   * one was acknowledged, count here, and that sync, if nothing is left, is not told). A sync
   * that did nothing is told only if `always` (the reconcile: "in sync").
   */
  #tell (link: Link, startedAt: number, always = false): void {
    const report = this.#report(link, startedAt)
    if (!always && report.ops === 0 && report.failures.length === 0) return
    try {
      this.#onSynced?.(report)
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, 'the synced listener threw')
    }
  }

  #report (link: Link, startedAt: number): PushSummary {
    const was = link.reported
    const now = linkTotals(link.uploader, link.conn)
    const listed = link.listed
    link.reported = now
    link.listed = false
    const report = emptySummary()
    for (const k of COUNTERS) report[k] = now[k] - was[k]
    return { ...report, durationMs: Date.now() - startedAt, failures: now.failures.slice(was.failures.length), listed }
  }

  // ---- reconcile and watch --------------------------------------------------------------------

  async #reconcile (link: Link): Promise<void> {
    try {
      await this.#reconcileOnce(link)
    } finally {
      this.#progress = undefined
    }
  }

  async #reconcileOnce (link: Link): Promise<void> {
    const started = Date.now()
    const fresh: string[] = []
    const stream = await this.#firstSyncStream(link)
    let changed: Set<string>
    try {
      changed = await this.#tree.scan('', { ...this.#scanOptions(fresh), ...(stream !== undefined ? { onEntry: stream.add } : {}) })
    } finally {
      await stream?.done()
    }
    this.#recheckLater(fresh)
    if (this.#once && changed.size === 0 && this.#inSyncAsMarked()) {
      this.#log.info({ entries: this.#tree.manifest.size, scanMs: Date.now() - started }, 'nothing changed here or on the server since the last sync')
      return
    }
    this.#remoteView()
    this.#guardMassDelete()
    const unindexed = await this.#unindexedServerContent([''])
    const ops = plan(this.#tree.manifest, this.#remote, [''], (p, d) => this.#rules.ignores(p, d), stream?.sent)
    this.#log.info({ entries: this.#tree.manifest.size, ops: ops.length, ...(stream !== undefined ? { streamed: stream.totals.opsTotal } : {}), scanMs: Date.now() - started }, 'reconciling')
    await this.#warmBlocks(link, ops, unindexed)
    const totals = stream?.totals ?? { opsTotal: 0, bytesTotal: 0 }
    totals.opsTotal += ops.length
    totals.bytesTotal += ops.reduce((n, op) => n + (op.t === 'file' ? op.entry.size : 0), 0)
    this.#progress = { totals, uploader: link.uploader, startedAt: this.#progress?.startedAt ?? Date.now() }
    await link.uploader.push(ops)
  }

  /**
   * Into an empty server, the scan's entries go out as it finds them (see first-sync.ts), with
   * the block cache ready first (pruned to nothing: the server holds nothing to copy from).
   */
  async #firstSyncStream (link: Link): Promise<FirstSyncStream | undefined> {
    if (this.#serverEntries !== 0) return undefined
    const remote = this.#remoteView()
    if (remote.size !== 0) return undefined
    await this.#loadBlocks()
    this.#blocks?.prune(remote)
    const stream = new FirstSyncStream(this.#tree.manifest, remote, async (ops) => await link.uploader.add(ops))
    this.#progress = { totals: stream.totals, uploader: link.uploader, startedAt: Date.now(), scanning: true }
    return stream
  }

  #markDirty (paths: string[]): void {
    for (const p of paths) {
      if (p === '') this.#fullRescan = true
      else this.#dirty.add(p)
      if (isIgnoreFile(p)) {
        // Other rules below this folder now: forget the old ones and look at the folder again.
        const dir = parentOf(p)
        this.#rules.invalidate(dir)
        if (dir === '') this.#fullRescan = true
        else this.#dirty.add(dir)
      }
    }
    if (this.#dirty.size > MAX_DIRTY_PATHS) {
      // A burst this large is cheaper as one rescan than as many small ones.
      this.#dirty.clear()
      this.#fullRescan = true
    }
    this.#schedule()
  }

  /** A scan's options; in watch mode, it collects into `fresh` the recent paths it adds (see RECHECK_MS). */
  #scanOptions (fresh: string[]): ScanOptions {
    if (this.#watcher === undefined) return SCAN
    const since = Date.now() - RECENT_MS
    return { ...SCAN, onAdded: (p, st) => { if (st.ctimeMs >= since) fresh.push(p) } }
  }

  /** Scans again, RECHECK_MS from now, the topmost of these paths that are still there by then. */
  #recheckLater (paths: string[]): void {
    if (this.#watcher === undefined || this.#closed || paths.length === 0) return
    const chosen = new Set(paths)
    const topmost = paths.filter((p) => {
      for (let q = parentOf(p); q !== ''; q = parentOf(q)) if (chosen.has(q)) return false
      return true
    })
    const timer = setTimeout(() => {
      this.#rechecks.delete(timer)
      // One the manifest no longer holds was seen gone by a scan since: its removal is on its way.
      // An ignore file still as scanned is left alone: marked dirty, it would bring new rules and
      // a rescan of its folder (the whole tree for the root's).
      void Promise.all(topmost.map(async (p) => this.#tree.manifest.has(p) && !await this.#unchangedIgnoreFile(p))).then((keep) => {
        const present = topmost.filter((_, i) => keep[i])
        if (present.length > 0 && !this.#closed) this.#markDirty(present)
      })
    }, RECHECK_MS)
    timer.unref()
    this.#rechecks.add(timer)
  }

  /** Whether `p` is an ignore file that is still the size and mtime the manifest holds. */
  async #unchangedIgnoreFile (p: string): Promise<boolean> {
    if (!isIgnoreFile(p)) return false
    const entry = this.#tree.manifest.get(p)
    const st = await lstat(this.#tree.abs(p)).catch(() => undefined)
    return entry?.kind === 'file' && st?.isFile() === true && st.size === entry.size && mtimeOf(st) === entry.mtime
  }

  #schedule (): void {
    if (this.#timer !== undefined || this.#link === undefined || this.#closed) return
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#working = this.#working.then(() => this.#pushDirty()).catch((err: unknown) => {
        this.#log.warn({ err: (err as Error).message }, 'push failed; will reconcile on reconnect')
        this.#link?.conn.destroy(err as Error)
      })
    }, this.#opts.debounceMs ?? 10)
  }

  async #pushDirty (link = this.#link): Promise<void> {
    if (link === undefined) return
    const started = Date.now()
    this.#remoteView()
    let scope: string[]
    if (this.#fullRescan) {
      scope = ['']
    } else {
      // Rescan the topmost dirty paths only; make sure each one's folder is known (a new folder
      // whose own event was dropped is picked up by scanning from its nearest known ancestor).
      const dirty = [...this.#dirty].sort()
      scope = []
      for (const p of dirty) {
        let q = p
        while (parentOf(q) !== '' && this.#tree.manifest.get(parentOf(q))?.kind !== 'dir') q = parentOf(q)
        if (q !== p && !this.#tree.manifest.has(q) && !await exists(this.#tree.abs(q))) {
          // An event under a folder that is neither here nor known: the watcher reports writes
          // under a renamed folder by its old name. Where it went, only a full scan can tell.
          scope = ['']
          break
        }
        if (!scope.some((s) => isWithin(q, s))) scope.push(q)
      }
    }
    this.#dirty.clear()
    this.#fullRescan = false
    if (scope.length === 0) return // what was dirty went with an earlier push
    this.#log.debug({ scope: scope.slice(0, 5), scopes: scope.length }, 'scanning')
    const fresh: string[] = []
    const scan = this.#scanOptions(fresh)
    const changed = await this.#scanScope(scope, scan)
    // Moves the watcher tells in halves (see #movedAway, #hold); a full scan sees both.
    if (this.#watcher !== undefined && !scope.includes('')) {
      const claimed = this.#movedAway(changed)
      const beyond = [...claimed].filter((c) => !scope.some((s) => isWithin(c, s)))
      if (beyond.length > 0) {
        this.#log.debug({ away: beyond.slice(0, 5) }, 'moved away: scanning where it was too')
        scope.push(...beyond)
        for (const c of await this.#scanScope(beyond, scan)) changed.add(c)
      }
      this.#hold(changed, claimed)
      // What is held is gone: in scope, a move to what arrived can start from it (its deletion
      // waits). Not for a mass removal's thousands of held files: a scope that long costs more.
      const arrived = [...changed].some((p) => this.#tree.manifest.has(p) && !this.#remote.has(p))
      if (arrived && this.#held.size <= MAX_HELD_IN_SCOPE) {
        const inScope = new Set(scope)
        for (const h of this.#held.keys()) if (!covers(inScope, h)) scope.push(h)
      }
    }
    this.#recheckLater(fresh)
    if (scope.includes('')) this.#guardMassDelete()
    const unindexed = await this.#unindexedServerContent(scope)
    const held = (p: string): boolean => this.#held.size > 0 && covers(this.#held, p)
    const ops = plan(this.#tree.manifest, this.#remote, scope, (p, d) => this.#rules.ignores(p, d), undefined, held)
    if (ops.length === 0) return
    this.#log.debug({ scope: scope.slice(0, 5), ops: ops.length }, 'pushing changes')
    await this.#warmBlocks(link, ops, unindexed)
    await link.uploader.push(ops)
    this.#scheduleSave()
    if (this.#onSynced !== undefined) {
      // Told once the server acknowledged (made durable) what this sync sent, resends included,
      // without holding up the next change.
      link.uploader.settled(link.uploader.lastId).then(() => this.#tell(link, started), () => {})
    }
  }

  /** Scans each of `scope` (see #pushDirty); returns the paths that changed. */
  async #scanScope (scope: readonly string[], scan: ScanOptions): Promise<Set<string>> {
    const changed = new Set<string>()
    for (const p of scope) {
      const before = this.#tree.manifest.get(p)
      for (const c of await this.#tree.scan(p, scan)) changed.add(c)
      const after = this.#tree.manifest.get(p)
      if (before?.kind === 'dir' && after?.kind !== 'dir') this.#watcher?.unwatchFolder(p)
      if (before === undefined && after?.kind === 'dir') {
        // A folder that arrived whole (renamed here, `mkdir -p`): the watcher is blind below it.
        const folders = this.#tree.manifest.subtree(p).filter((c) => c !== p && this.#tree.manifest.get(c)?.kind === 'dir')
        if (folders.length > 0) {
          this.#watcher?.watchFolders([p, ...folders])
          // What was written there before the watches took hold.
          for (const f of folders) for (const c of await this.#tree.scan(f, scan)) changed.add(c)
        }
      }
    }
    return changed
  }

  /**
   * The old half of moves whose new half `changed` holds: paths gone from here whose content the
   * server holds and just arrived elsewhere. The watcher reports a folder renamed into a new
   * folder as the new folder first and the old one up to ~500 ms later; planned apart, the move
   * was a copy of every file, then a delete. A gone folder is claimed whole only when all its
   * files arrived (a folder move); otherwise only the files that did (file moves), so that what
   * went elsewhere, not reported yet, is not deleted. Claimed paths join the plan's scope.
   */
  #movedAway (changed: ReadonlySet<string>): Set<string> {
    const local = this.#tree.manifest
    const remote = this.#remote
    const arriving: Array<Buffer> = []
    for (const p of changed) {
      const e = local.get(p)
      if (e?.kind === 'file' && e.size > 0 && !isHashPending(e) && !remote.has(p) && remote.hasContent(e.hash)) arriving.push(e.hash)
    }
    const claimed = new Set<string>()
    if (arriving.length === 0) return claimed
    const gone = (q: string): boolean => lstatSync(this.#tree.abs(q), { throwIfNoEntry: false }) === undefined
    const arrivedKeys = new Set(arriving.map((h) => h.toString('latin1')))
    /** Gone folders, and whether all their files arrived (one walk each). */
    const wholeTops = new Map<string, boolean>()
    for (const hash of arriving) {
      // Content held in many places (a licence, a blank template) is a copy more often than a
      // move; a moved folder is still found through any of its other files.
      if (remote.countWithHash(hash) > MAX_MOVE_SOURCES) continue
      for (const q of remote.pathsWithHash(hash)) {
        if (covers(claimed, q) || !gone(q)) continue
        let top = q
        while (parentOf(top) !== '' && gone(parentOf(top))) top = parentOf(top)
        let whole = top === q || wholeTops.get(top)
        if (whole === undefined) {
          whole = remote.subtree(top).every((r) => {
            const e = remote.get(r)
            return e?.kind !== 'file' || e.size === 0 || arrivedKeys.has(e.hash.toString('latin1'))
          })
          wholeTops.set(top, whole)
        }
        claimed.add(whole ? top : q)
      }
    }
    for (const h of this.#held.keys()) if (covers(claimed, h)) this.#held.delete(h)
    return claimed
  }

  /**
   * Holds back the deletion of what `changed` says is gone (topmost paths the server holds, not
   * `claimed`) for HOLD_GONE_MS: a scan may see a folder gone before the watcher reports where
   * it went (its other half in a later batch, a recheck or a folder's own watch firing first).
   * Deleted at once, its files would be sent again in full. Then the paths are looked at again;
   * still gone and unclaimed, they are deleted.
   */
  #hold (changed: ReadonlySet<string>, claimed: ReadonlySet<string>): void {
    const until = performance.now() + HOLD_GONE_MS
    const gone = [...changed].filter((p) => !this.#tree.manifest.has(p) && this.#remote.has(p)).sort()
    const added = new Set<string>()
    let last: string | undefined
    for (const p of gone) {
      if (last !== undefined && isWithin(p, last)) continue
      last = p
      if (!covers(claimed, p) && !covers(this.#held, p)) added.add(p)
    }
    if (added.size === 0) return
    // One hold per gone folder: what it holds below goes with it (a file held, then its folder).
    for (const h of this.#held.keys()) if (covers(added, h)) this.#held.delete(h)
    for (const p of added) this.#held.set(p, until)
    this.#armHolds()
  }

  /** Deletes, once their time is up, the held paths still gone (see #hold). */
  #armHolds (): void {
    if (this.#holdTimer !== undefined || this.#held.size === 0 || this.#closed) return
    let next = Infinity
    for (const t of this.#held.values()) next = Math.min(next, t)
    this.#holdTimer = setTimeout(() => {
      this.#holdTimer = undefined
      const now = performance.now()
      const due = [...this.#held].filter(([, t]) => t <= now).map(([p]) => p)
      for (const p of due) this.#held.delete(p)
      // Looked at from the topmost folder gone since, which a scan of the path itself would
      // find unknown (and rescan everything for).
      const local = this.#tree.manifest
      const tops = new Set(due.map((p) => {
        let q = p
        while (parentOf(q) !== '' && !local.has(parentOf(q))) q = parentOf(q)
        return q
      }))
      if (tops.size > 0) this.#markDirty([...tops])
      this.#armHolds()
    }, Math.max(0, next - performance.now()) + 5)
    this.#holdTimer.unref()
  }

  /**
   * Refuses to plan the deletion of everything: a source that is empty or gone (an unmounted
   * disk, a wrong path) while the server holds files is far more often a mistake than a wish.
   */
  /** Call with the model of the server built (see #remoteView). */
  #guardMassDelete (): void {
    if (this.#opts.allowDeleteAll === true || this.#tree.manifest.size > 0 || this.#remote.size === 0) return
    throw new EmptySourceError(`${this.#opts.src} is empty or missing while the server holds ${this.#remote.size} entries: refusing to delete them all (pass --allow-delete-all if that is what you want)`)
  }

  /**
   * Called before planning, while the model still describes the server as it is: drops cached
   * blocks of content the server no longer holds, and lists local files whose content the server
   * holds but the cache lacks (a cold cache, content another client pushed).
   *
   * The block cache is read from disk here, the first time a plan of `scope` may upload a file
   * (some file differs from the model of the server): a sync that uploads nothing never loads
   * it (~250 ms for 100k files).
   */
  async #unindexedServerContent (scope: string[]): Promise<Array<[string, Buffer]>> {
    const blocks = this.#blocks
    if (blocks === undefined) return []
    if (!this.#blocksLoaded) {
      if (!this.#mayUpload(scope)) return []
      await this.#loadBlocks()
    }
    blocks.prune(this.#remote)
    const out: Array<[string, Buffer]> = []
    for (const [p, e] of this.#tree.manifest.entries()) {
      if (e.kind === 'file' && e.size >= blocks.blockSize && !blocks.has(e.hash) && this.#remote.hasContent(e.hash)) out.push([p, e.hash])
    }
    return out
  }

  /** Reads the block cache from disk, once. */
  async #loadBlocks (): Promise<void> {
    const blocks = this.#blocks
    if (blocks === undefined || this.#blocksLoaded) return
    this.#blocksLoaded = true
    await blocks.load(this.#stateFile('blocks'))
    this.#saved.blocks = blocks.version
  }

  /** Whether some file in `scope` differs from what the model says the server holds there. */
  #mayUpload (scope: string[]): boolean {
    for (const [p, e] of this.#tree.manifest.entries()) {
      if (e.kind !== 'file' || !scope.some((s) => isWithin(p, s))) continue
      const r = this.#remote.get(p)
      if (r?.kind !== 'file' || !r.hash.equals(e.hash)) return true
    }
    return false
  }

  /**
   * Indexes those files, only when the plan uploads something the index could help with; then
   * asks the server for the block sums of old versions the cache still lacks (files changed
   * while no warm cache saw them), all requests at once.
   */
  async #warmBlocks (link: Link, ops: PlannedOp[], unindexed: Array<[string, Buffer]>): Promise<void> {
    const blocks = this.#blocks
    if (blocks === undefined) return
    const uploads = ops.filter((op): op is Extract<PlannedOp, { t: 'file' }> => op.t === 'file' && !op.have && op.entry.size >= blocks.blockSize)
    if (uploads.length === 0) return
    for (const [p, hash] of unindexed) await blocks.indexFile(this.#tree.abs(p), hash)
    const missing = new Map<string, Buffer>()
    for (const op of uploads) {
      const basis = op.basis
      if (basis !== undefined && basis.size >= FETCH_SUMS_FROM && !blocks.has(basis.hash)) missing.set(basis.hash.toString('hex'), basis.hash)
    }
    const answers = await Promise.all([...missing.values()].map(async (hash) => [hash, await link.uploader.requestSums(hash, blocks.blockSize)] as const))
    for (const [hash, sums] of answers) if (sums !== undefined) blocks.importSums(hash, sums)
    if (missing.size > 0) this.#log.debug({ requested: missing.size, got: answers.filter(([, s]) => s !== undefined).length }, 'fetched block sums of old versions')
  }

  // ---- state ----------------------------------------------------------------------------------

  #saveTimer: NodeJS.Timeout | undefined
  /** Versions of the model of the server and of the block cache in the state files. */
  #saved = { remote: -1, blocks: -1 }
  /** The digest the server gave at the last connect. */
  #serverDigest: Buffer | undefined
  /** How many entries the server said it holds when this link connected. */
  #serverEntries: number | undefined
  /** Whether the block cache was read from its state file (see #unindexedServerContent). */
  #blocksLoaded = false
  /** The save running, if any (see #saveState). */
  #saving: Promise<void> = Promise.resolve()

  #scheduleSave (): void {
    if (this.#saveTimer !== undefined) return
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = undefined
      this.#saveState().catch((err: unknown) => this.#log.warn({ err: (err as Error).message }, 'cannot save state'))
    }, 2000)
    this.#saveTimer.unref()
  }

  #stateFile (kind: 'local' | 'remote' | 'blocks' | 'synced'): string {
    return join(this.#opts.stateDir, `${this.#stateKey}.${kind}`)
  }

  async #loadState (): Promise<void> {
    if (this.#stateLoaded) return
    this.#stateLoaded = true
    await mkdir(this.#opts.stateDir, { recursive: true })
    // Side by side: each is a few thread-pool round trips.
    // The block cache's file is read when a plan first needs it (see #unindexedServerContent).
    const [blocks, remote] = await Promise.all([
      ServerBlocks.create(),
      loadManifest(this.#stateFile('remote'), `remote:${this.#opts.host}:${this.#opts.port}`),
      this.#tree.load(this.#stateFile('local')),
    ])
    this.#blocks = blocks
    this.#savedRemote = remote
    this.#syncMark = await readSyncMark(this.#stateFile('synced'))
    this.#saved = { remote: this.#remote.version, blocks: blocks.version }
  }

  /** The model of the server, built from its saved view the first time it is needed. */
  #remoteView (): Manifest {
    const saved = this.#savedRemote
    if (saved !== undefined) {
      this.#savedRemote = undefined
      for (const [p, e] of saved.rows()) this.#remote.set(p, e)
      // Saved with the view it digests (the file is checksummed): not recomputed at each connect.
      if (saved.digest !== undefined) this.#remote.restoreDigest(saved.digest)
      this.#saved.remote = this.#remote.version
    }
    return this.#remote
  }

  /**
   * Whether the last --once run that ended with nothing left to do left the local state just
   * loaded (and unchanged since) and the server at the digest it has now: then there is nothing
   * to do, and neither the view of the server nor a plan is needed.
   */
  #inSyncAsMarked (): boolean {
    const mark = this.#syncMark
    const local = this.#tree.stateSum
    return mark !== undefined && local !== undefined && this.#serverDigest !== undefined &&
      mark.localState.equals(local) && mark.serverDigest.equals(this.#serverDigest)
  }

  /**
   * After a --once run with nothing left to do (nothing failed, nothing still changing, every
   * entry hashed), marks the local state saved and the server's digest as in sync (see
   * sync-mark.ts). A run that found the mark valid has nothing to add to it.
   */
  async #markInSync (link: Link): Promise<void> {
    const local = this.#tree.stateSum
    const failed = this.#summary.failures.length > 0 || link.uploader.failures.length > 0
    if (failed || this.#dirty.size > 0 || local === undefined || this.#savedRemote !== undefined) return
    const serverDigest = this.#remote.digest()
    if (this.#syncMark?.localState.equals(local) === true && this.#syncMark.serverDigest.equals(serverDigest)) return
    this.#syncMark = { localState: local, serverDigest }
    await writeSyncMark(this.#stateFile('synced'), this.#syncMark).catch((err: unknown) => this.#log.warn({ err: (err as Error).message }, 'cannot save state'))
  }

  /**
   * `settled`: every operation was sent (and in watch mode answered), so the model of the server
   * is what it holds or will, and cached blocks of content it no longer holds (the old version of
   * each changed file) are dropped before saving: the next start loads half as many after an
   * edit.
   */
  async #saveState (settled = false): Promise<void> {
    clearTimeout(this.#saveTimer)
    this.#saveTimer = undefined
    // One save at a time: the timer's and the watch loop's would write the same temp files.
    const run = this.#saving.then(async () => await this.#save(settled))
    this.#saving = run.catch(() => {})
    await run
  }

  async #save (settled: boolean): Promise<void> {
    // Otherwise not pruned: while a plan is being sent the model is ahead of what was sent.
    // A cache never read from disk is neither pruned nor saved: it would replace the file.
    const blocks = this.#blocksLoaded ? this.#blocks : undefined
    if (settled) blocks?.prune(this.#remote)
    // What did not change since it was loaded or saved is not written again.
    const remote = this.#remote.version
    const blocksVersion = blocks?.version ?? 0
    await Promise.all([
      this.#tree.save(this.#stateFile('local')),
      // Only a view every op of which was acknowledged is worth keeping; otherwise the next
      // connect will find the digests differ and list.
      remote === this.#saved.remote || this.#savedRemote !== undefined ? undefined : saveManifest(this.#stateFile('remote'), `remote:${this.#opts.host}:${this.#opts.port}`, this.#remote, { digest: true }),
      blocks === undefined || blocksVersion === this.#saved.blocks ? undefined : blocks.save(this.#stateFile('blocks')),
    ])
    this.#saved = { remote, blocks: blocks === undefined ? this.#saved.blocks : blocksVersion }
  }

  // ---- helpers --------------------------------------------------------------------------------

  #closedPromise (): Promise<void> {
    return new Promise((resolve) => {
      if (this.#closed) resolve()
      else this.#wakeClosed = resolve
    })
  }

  async #sleep (ms: number): Promise<void> {
    await Promise.race([new Promise((resolve) => setTimeout(resolve, ms)), this.#closedPromise()])
  }
}

async function exists (abs: string): Promise<boolean> {
  return await lstat(abs).then(() => true, () => false)
}

function isFatal (err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  return code === ErrorCode.AUTH || code === ErrorCode.VERSION
}

/** Exponential backoff with full jitter (AWS architecture blog), capped. */
export function backoff (attempt: number, minMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 20))
  return Math.round(minMs / 2 + Math.random() * (ceiling - minMs / 2))
}

/** The fields of a PushSummary that add up across syncs and links. */
const COUNTERS = ['ops', 'filesSent', 'filesDeduplicated', 'deleted', 'dataBytes', 'literalBytes', 'copiedBytes', 'wireBytesOut', 'wireBytesIn'] as const

function emptySummary (): PushSummary {
  return { ops: 0, filesSent: 0, filesDeduplicated: 0, deleted: 0, dataBytes: 0, literalBytes: 0, copiedBytes: 0, wireBytesOut: 0, wireBytesIn: 0, durationMs: 0, failures: [], listed: false }
}

/** What a link did so far: its uploader's counts, its bytes on the wire, its failures. */
function linkTotals (uploader: Uploader, conn: Connection): PushSummary {
  return { ...uploader.stats, wireBytesOut: conn.bytesOut, wireBytesIn: conn.bytesIn, durationMs: 0, failures: [...uploader.failures], listed: false }
}

/** Whether `p` or one of its folders is a key of `paths`. */
function covers (paths: ReadonlySet<string> | ReadonlyMap<string, unknown>, p: string): boolean {
  for (let q = p; ; q = parentOf(q)) {
    if (paths.has(q)) return true
    if (q === '') return false
  }
}
