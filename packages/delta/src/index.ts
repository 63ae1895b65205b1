/**
 * @fsyncd/delta: the pure delta engine. No I/O: it takes bytes and gives operations.
 *
 * The client keeps one `BlockIndex` of fixed, aligned blocks of every file the server holds (it
 * can, because it pushed that content) and deltifies each new or changed file against all of
 * them, so a file that copies blocks of any server file, at any offset, costs only its new bytes.
 * Server files shorter than a block are found too, by an anchor window (a tar of them costs its
 * headers). The server checks each op with `PatchChecker` before it reads a byte.
 *
 * ```ts
 * import { BlockIndex, Deltifier, PatchChecker, createStrongHasher } from '@fsyncd/delta'
 *
 * const hasher = await createStrongHasher()      // xxh64 in WebAssembly, loaded once
 * const index = new BlockIndex()                 // 4 KiB blocks
 * const writer = index.addFile(7, hasher)        // 7: the caller's u32 for a server file
 * for await (const chunk of contentOfServerFile) writer.push(chunk)
 * writer.end()                                   // now visible to deltifiers
 *
 * const deltifier = new Deltifier(index, hasher)
 * for await (const chunk of newFile) send(deltifier.push(chunk))
 * send(deltifier.end())     // ops: { type: 'copy', fileRef, offset, length } | { type: 'literal', data }
 *
 * // server side
 * const checker = new PatchChecker({ sourceLength: (fileRef) => lengths.get(fileRef) })
 * for (const op of ops) checker.check(op)        // throws DeltaError before anything is read
 *
 * cache.write(index.serialize())                 // ~12 B per block; deserialize validates
 * const again = BlockIndex.deserialize(cache.read())
 * ```
 */
export { BlockIndex, DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE, MAX_CANDIDATES_PER_WEAK, MIN_BLOCK_SIZE } from './block-index.js'
export { BlockIndexWriter } from './block-index-writer.js'
export type { CopyOp, DeltaOp, LiteralOp } from './delta-op.js'
export { DEFAULT_MAX_LITERAL, Deltifier, type DeltifierOptions } from './deltifier.js'
export { DeltaError, DeltaErrorCode } from './errors.js'
export { applyDelta, checkCopy, DEFAULT_MAX_PATCH_LITERAL, PatchChecker, type PatchLimits, type ReadSource } from './patch.js'
export { createStrongHasher, type StrongHasher } from './strong-hasher.js'
export { RollingSum, weakSum } from './weak-sum.js'
export { INDEXING_MAX_COPY, IndexingDeltifier } from './indexing-deltifier.js'
