/**
 * Paths on the wire are relative, '/'-separated and canonical: what `path.posix.normalize` would
 * leave alone, with no `.`/`..` component, no empty component, no NUL, not absolute. Checking at
 * the boundary (as syncthing's checkFilename does) means nothing behind it can be tricked into
 * leaving the root by the name alone; the server still refuses to go through symlinked folders.
 */
import { posix } from 'node:path'
import { ErrorCode, FsyncdError } from './errors.js'

export const MAX_PATH_BYTES = 4096
export const MAX_NAME_BYTES = 255
/** The server's own state folder at the root of a destination; never user data, never synced. */
export const STATE_DIR = '.fsyncd'

/** Returns the reason `p` is not an acceptable wire path, or undefined when it is. */
export function pathProblem (p: string): string | undefined {
  if (p.length === 0) return 'empty path'
  if (p.includes('\0')) return 'NUL in path'
  if (Buffer.byteLength(p) > MAX_PATH_BYTES) return `path longer than ${MAX_PATH_BYTES} bytes`
  if (p.startsWith('/')) return 'absolute path'
  if (p.includes('\\')) return 'backslash in path'
  for (const name of p.split('/')) {
    if (name === '' || name === '.' || name === '..') return `path component "${name}" is not allowed`
    if (Buffer.byteLength(name) > MAX_NAME_BYTES) return `name longer than ${MAX_NAME_BYTES} bytes`
  }
  if (posix.normalize(p) !== p) return 'path is not canonical'
  // Case-folded: on a case-insensitive destination `.FSYNCD` is the same folder.
  const first = p.split('/', 1)[0] as string
  if (first.toLowerCase() === STATE_DIR) return `${STATE_DIR} is reserved`
  return undefined
}

export function checkPath (p: string): string {
  const problem = pathProblem(p)
  if (problem !== undefined) throw new FsyncdError(ErrorCode.BAD_PATH, `${problem}: ${JSON.stringify(p.slice(0, 200))}`)
  return p
}

/** The parent of a wire path, '' for a top-level entry. */
export function parentOf (p: string): string {
  const i = p.lastIndexOf('/')
  return i < 0 ? '' : p.slice(0, i)
}

/** True when `p` is `dir` itself or inside it. `dir` '' is the root, which contains everything. */
export function isWithin (p: string, dir: string): boolean {
  return dir === '' || p === dir || (p.startsWith(dir) && p.charCodeAt(dir.length) === 47)
}
