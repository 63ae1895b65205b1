/**
 * @fsyncd/tree — a local folder as a Manifest: walk, hash (SHA-256, re-read when the file moves
 * under us) and a persistent stat cache so that only changed files are hashed again. Both the
 * client (its source) and the server (its destination) use it.
 *
 * @example
 * ```ts
 * const tree = new LocalTree('/src', { ignore: (p) => p === '.fsyncd' })
 * await tree.load(stateFile)
 * const changed = await tree.scan()   // paths whose entry changed
 * await tree.save(stateFile)
 * ```
 */
export * from './checked-file.js'
export * from './hash-file.js'
export * from './local-tree.js'
export * from './manifest-file.js'
