/**
 * @fsyncd/client — pushes a local folder to an fsyncd server: scan, plan, upload, watch.
 *
 * @example
 * ```ts
 * const client = new PushClient({ src: '/src', host: '127.0.0.1', port: 7000, stateDir, log })
 * const summary = await client.once()        // or: await client.watch()
 * ```
 */
export { PushClient, type PushOptions, type PushSummary, type Progress, backoff, EmptySourceError } from './client.js'
export { IgnoreRules, DEFAULT_IGNORES, IGNORE_FILE } from './ignore-rules.js'
export { plan, type PlannedOp } from './planner.js'
export { Uploader, type UploadStats, type Failure } from './uploader.js'
// TreeWatcher (./watcher.js) is not re-exported: the client imports it when watching starts, so
// a one-shot push never loads the native watcher (~7 ms of every run).
