/**
 * @fsyncd/server — receives changes into a destination folder, durably and atomically.
 *
 * @example
 * ```ts
 * const server = new SyncServer({ dest: '/dest', port: 7000, token: process.env.FSYNCD_TOKEN, log })
 * const { port } = await server.listen()
 * // …
 * await server.close()
 * ```
 */
export { SyncServer, type SyncServerOptions, isLoopback } from './server.js'
export { Store } from './store.js'
export { Session } from './session.js'
export { History, type HistoryRecord, historyFiles, HISTORY_FILE } from './history.js'
